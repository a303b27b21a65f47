"""The API's processes killed with SIGKILL in the middle of a group of webhooks: no report
answered 200 is lost, none is half-written or stored twice.

Real processes, as in ``test_group_commit_crashes``: ``gateway serve`` (2 processes of 8
threads, each process's writer storing the webhooks that arrive together in one transaction)
under 16 clients posting GO-SEND's webhooks (its documented body: ``entity_id``, ``status``,
``event_id``, ``event_date``, with the ``X-Callback-Token`` we registered), each report with
its own ``event_id``, and now and then the retry of one already answered (at-least-once
delivery: it must be answered as a duplicate). Both API processes are killed at once, a few
times, when a writer's transaction is open if the test sees one (PostgreSQL: a transaction on
the inbox; SQLite: the write lock held), otherwise at random moments of the load.

Then every report answered 200 is in the inbox once, as it was sent, and listed for a report
job (the answer comes after the listing); a provider whose connection was cut sends its report
again, and it is stored once whether its first try had committed (a duplicate now) or died
with its group (stored now).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
import uuid

import pytest
import requests
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from gateway.models import ProviderEventRecord
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import free_port
from gateway.tracking import REPORTS
from tests.reliability.harness import Scenario
from tests.reliability.test_group_commit_crashes import _kill_workers, _serve

pytestmark = pytest.mark.serial

CLIENTS = 16
KILLS = 5
PATH = "/webhooks/gosend_sandbox"
TOKEN = {"X-Callback-Token": GOSEND_TEST_CREDENTIALS["webhook_token"]}
NEW = {"received": 1, "duplicates": 0}
DUPLICATE = {"received": 0, "duplicates": 1}


def report(event_id: str) -> dict:
    return {"entity_id": f"GK-{event_id[:12]}", "status": "picked", "event_id": event_id,
            "event_date": 1700000000000}


class Load:
    """Providers sending reports until told to stop; what each report was answered."""

    def __init__(self, url: str):
        self.url = url
        self.answered: list[str] = []            # event ids answered 200, stored new
        self.cut: list[str] = []                 # event ids whose answer never came
        self.wrong: list[tuple[int, str]] = []   # any other answer
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._provider, args=(n,), daemon=True)
                        for n in range(CLIENTS)]

    def _provider(self, n: int) -> None:
        session, rng = requests.Session(), random.Random(n)
        while not self.stop.is_set():
            with self.lock:
                retry = bool(self.answered) and rng.random() < 0.2
                event_id = rng.choice(self.answered) if retry else uuid.uuid4().hex
            try:
                response = session.post(f"{self.url}{PATH}", json=report(event_id),
                                        headers=TOKEN, timeout=30)
            except requests.RequestException:
                if not retry:
                    with self.lock:
                        self.cut.append(event_id)
                session = requests.Session()
                continue
            expected = DUPLICATE if retry else NEW
            with self.lock:
                if response.status_code == 200 and response.json() == expected:
                    if not retry:
                        self.answered.append(event_id)
                else:
                    self.wrong.append((response.status_code, response.text[:200]))

    def resend(self, event_id: str) -> requests.Response:
        return requests.post(f"{self.url}{PATH}", json=report(event_id), headers=TOKEN,
                             timeout=30)


def _writer_open(db) -> bool:
    """A writer's transaction is open: on PostgreSQL one that works on the inbox, on SQLite
    one that holds the write lock (taking it without waiting fails)."""
    if db.is_sqlite:
        connection = sqlite3.connect(make_url(db.url).database, timeout=0,
                                     isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            connection.close()
    with db.engine.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
            "AND query ILIKE '%provider_events%'")))


def test_killing_the_api_mid_group_of_webhooks_loses_no_report_answered(
        tmp_path, gateway_gosend, gateway_redis_url, gateway_redis, gateway_database_url,
        serve_app):
    scenario = Scenario(tmp_path, gateway_gosend, gateway_database_url, gateway_redis_url,
                        serve_app)
    try:
        _run_and_check(scenario, tmp_path, gateway_redis)
    finally:
        scenario.close()


def _run_and_check(scenario, tmp_path, redis) -> None:
    db = scenario.gateway.db
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    server = _serve(scenario.env, port, log)
    load = Load(f"http://127.0.0.1:{port}")
    rng = random.Random(20261203)
    kills = open_at_kill = 0
    try:
        for thread in load.threads:
            thread.start()
        time.sleep(1.0)
        for _ in range(KILLS):
            deadline = time.monotonic() + rng.uniform(0.2, 0.8)
            while time.monotonic() < deadline and not _writer_open(db):
                time.sleep(0.002)
            open_at_kill += _writer_open(db)   # (read again: it may have just ended)
            assert _kill_workers(server) == 2
            kills += 1
            time.sleep(rng.uniform(1.0, 1.5))     # new processes start; the load goes on
        time.sleep(1.0)
        load.stop.set()
        for thread in load.threads:
            thread.join(timeout=60)
        # Every cut report again, as its provider does, once the server is back.
        resent = {event_id: load.resend(event_id) for event_id in load.cut}
    finally:
        load.stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        log.close()

    assert load.wrong == []
    assert len(load.answered) > 100 and len(load.cut) >= kills
    assert {r.status_code for r in resent.values()} == {200}
    assert all(r.json() in (NEW, DUPLICATE) for r in resent.values())
    stored_on_resend = [k for k, r in resent.items() if r.json() == NEW]
    print(f"\nwebhook group crashes: {kills} kills, {len(load.answered)} answered 200, "
          f"{len(load.cut)} cut ({len(stored_on_resend)} of them stored only when sent "
          f"again), a writer's transaction open at {open_at_kill} kills")
    if not db.is_sqlite:
        # the kills landed in open transactions, and their reports died with them: none
        # had been answered, and they were stored when sent again
        assert open_at_kill >= 1
        assert stored_on_resend, "no kill cut a group before its commit"

    with db.read() as session:
        rows = session.execute(select(
            ProviderEventRecord.id, ProviderEventRecord.event_key,
            ProviderEventRecord.provider_reference, ProviderEventRecord.raw_status,
            ProviderEventRecord.source)).all()
    by_key = {row.event_key: row for row in rows}
    # nothing answered is lost, nothing is stored twice or that was never sent
    assert len(by_key) == len(rows)
    assert set(load.answered) <= set(by_key)
    assert set(by_key) == set(load.answered) | set(resent)
    # nothing half-written: each row as its report was sent
    assert all((r.provider_reference, r.raw_status, r.source)
               == (f"GK-{r.event_key[:12]}", "picked", "webhook") for r in rows)
    # every report answered was listed for a report job before its answer (no worker runs)
    listed = {int(i) for i in redis.lrange(REPORTS.key, 0, -1)}
    assert {by_key[k].id for k in load.answered} <= listed
    assert {by_key[k].id for k in stored_on_resend} <= listed
