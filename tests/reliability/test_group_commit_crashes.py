"""The API's processes killed with SIGKILL in the middle of a group commit: nothing answered
202 is lost, nothing is half-written.

Real processes: ``gateway serve`` (gunicorn, 2 processes of 8 threads, each process with its
writer storing the new requests that arrive together in one transaction) under a steady load
of 16 clients, each request with its own Idempotency-Key. Every so often both API processes
are killed at once (gunicorn's master starts new ones). On PostgreSQL the kill waits until a
writer holds the audit chain's head (a group's transaction is open: its rows are written or
being written, not committed); on SQLite it lands at random moments of the load.

Then every request a client saw answered 202 must be in the database, whole: its first
status event, its audit link, the mark of the dispatch it is owed; the audit chain verifies.
A client whose connection was cut retries with the same key: exactly one request per key,
whether its first try had committed (replayed) or died with its group (made now).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import psutil
import pytest
import requests
from sqlalchemy import func, select, text

from gateway.audit import verify_chain
from gateway.models import AuditRecord, ServiceRequest, StatusEvent
from gateway.testing import free_port
from tests.conftest import MEDICINE_BODY, bearer
from tests.reliability.harness import Scenario

pytestmark = pytest.mark.serial

CLIENTS = 16
KILLS = 5
PATH = "/api/v1/services/medicine_delivery/requests"


def _serve(env: dict, port: int, log) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2", "--threads", "8"],
        env={**env, "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "gateway serve exited"
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError("gateway serve did not answer")


class Load:
    """Clients that send new requests until told to stop; what each key was answered."""

    def __init__(self, url: str, key: str):
        self.url, self.headers = url, bearer(key)
        self.answered: dict[str, str] = {}       # Idempotency-Key -> request id (202)
        self.cut: list[str] = []                 # keys whose answer never came
        self.refused: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True)
                        for _ in range(CLIENTS)]

    def _client(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            key = uuid.uuid4().hex
            body = {**MEDICINE_BODY, "prescription_id": f"RX-GC-{key}"}
            try:
                response = session.post(f"{self.url}{PATH}", json=body, timeout=30,
                                        headers={**self.headers, "Idempotency-Key": key})
            except requests.RequestException:
                with self.lock:
                    self.cut.append(key)
                session = requests.Session()
                continue
            with self.lock:
                if response.status_code == 202:
                    self.answered[key] = response.json()["id"]
                else:
                    self.refused.append((response.status_code, response.text[:200]))

    def retry(self, key: str) -> requests.Response:
        return requests.post(f"{self.url}{PATH}", timeout=30,
                             json={**MEDICINE_BODY, "prescription_id": f"RX-GC-{key}"},
                             headers={**self.headers, "Idempotency-Key": key})


def _group_open(db) -> bool:
    """A writer's transaction holds the audit chain's head (PostgreSQL)."""
    with db.engine.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'audit_head' AND l.mode = 'RowShareLock' AND l.granted")))


def _kill_workers(master: subprocess.Popen) -> int:
    workers = psutil.Process(master.pid).children()
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    return len(workers)


def test_killing_the_api_mid_group_commit_loses_nothing_answered(
        tmp_path, gateway_gosend, gateway_redis_url, gateway_redis, gateway_database_url,
        serve_app):
    scenario = Scenario(tmp_path, gateway_gosend, gateway_database_url, gateway_redis_url,
                        serve_app)
    try:
        _run_and_check(scenario, tmp_path)
    finally:
        scenario.close()


def _run_and_check(scenario, tmp_path) -> None:
    db = scenario.gateway.db
    postgres = not db.is_sqlite
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    server = _serve(scenario.env, port, log)
    load = Load(f"http://127.0.0.1:{port}", scenario.key)
    rng = random.Random(20261203)
    kills = open_at_kill = 0
    try:
        for thread in load.threads:
            thread.start()
        time.sleep(1.0)
        for _ in range(KILLS):
            if postgres:
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline and not _group_open(db):
                    pass
                open_at_kill += _group_open(db)   # (read again: it may have just ended)
            else:
                time.sleep(rng.uniform(0.2, 0.8))
            assert _kill_workers(server) == 2
            kills += 1
            time.sleep(rng.uniform(1.0, 1.5))     # new processes start; the load goes on
        time.sleep(1.0)
        load.stop.set()
        for thread in load.threads:
            thread.join(timeout=60)
        # Every cut request again, with its own key, once the server is back.
        retried = {key: load.retry(key) for key in load.cut}
    finally:
        load.stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        log.close()

    print(f"\ngroup commit crashes: {kills} kills, {len(load.answered)} answered 202, "
          f"{len(load.cut)} cut, groups open at {open_at_kill} kills")
    assert load.refused == []
    assert len(load.answered) > 100 and len(load.cut) >= kills
    assert {r.status_code for r in retried.values()} == {202}
    made_on_retry = [k for k, r in retried.items() if "Idempotent-Replayed" not in r.headers]
    replayed = {k: r.json()["id"] for k, r in retried.items()
                if "Idempotent-Replayed" in r.headers}
    if postgres:
        # the kills landed in open transactions, and those transactions' requests died
        # with them: none of them had been answered, and their retries made them now
        assert open_at_kill >= 1
        assert made_on_retry, "no kill cut a group before its commit"

    with db.read() as session:
        stored = dict(session.execute(select(ServiceRequest.idempotency_key,
                                             ServiceRequest.id)).all())
        # nothing answered 202 is lost, and a key made one request, whatever happened
        assert {k: stored.get(k) for k in load.answered} == load.answered
        assert {k: stored.get(k) for k in replayed} == replayed
        assert set(stored) == set(load.answered) | set(retried)
        # nothing half-written: each request whole, every link of the chain there
        ids = set(stored.values())
        first_events = set(session.scalars(select(StatusEvent.request_id).where(
            StatusEvent.status == "received", StatusEvent.raw_status.is_(None))))
        assert ids <= first_events
        created = session.scalars(select(AuditRecord.target).where(
            AuditRecord.action == "request.create")).all()
        assert sorted(created) == sorted(f"request:{i}" for i in ids)
        owed = session.scalar(select(func.count()).select_from(ServiceRequest).where(
            ServiceRequest.pending_job == "dispatch"))
        assert owed == len(ids)      # no worker runs here: every one still owed
        assert verify_chain(session).ok
