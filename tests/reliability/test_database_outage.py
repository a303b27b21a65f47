"""The database unavailable for a moment: the API answers 503 in the error shape (never a
500), stores nothing half-way, and recovers by itself when the database is back.

On SQLite the outage is another process holding the write lock past the busy timeout; on
PostgreSQL, the database refusing connections and the gateway's own being cut, or the server
stopped under a gateway that reaches it over a unix socket. Either way the gateway is not
restarted. A provider's webhook that arrives meanwhile is answered 503 (so the provider sends
it again), never 500 and never dropped: the retry is stored and applied.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import drain, free_port, wait_for_status
from tests.conftest import MEDICINE_BODY, bearer, new_key, postgres_test_url
from tests.gateway.couriers.helpers import bookings, detail
from tests.gateway.test_invariants import assert_error_shape

CREATE = "/api/v1/services/medicine_delivery/requests"


class SqliteLockedOut:
    """Hold SQLite's write lock from another connection for ``seconds``."""

    def __init__(self, url, seconds: float):
        self.path, self.seconds = make_url(url).database, seconds
        self.locked = threading.Event()

    def __enter__(self):
        def hold():
            connection = sqlite3.connect(self.path, timeout=30)
            connection.execute("BEGIN EXCLUSIVE")
            self.locked.set()
            time.sleep(self.seconds)
            connection.rollback()
            connection.close()

        self.thread = threading.Thread(target=hold, daemon=True)
        self.thread.start()
        self.locked.wait(10)
        return self

    def __exit__(self, *exc):
        self.thread.join()


class PostgresRefusing:
    """The database refuses new connections and the open ones are cut, until exit."""

    def __init__(self, url):
        url = make_url(url)
        self.database = url.database
        self.admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def _run(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(sql))

    def __enter__(self):
        self._run(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        self._run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608
                  f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()")
        return self

    def __exit__(self, *exc):
        self._run(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')
        self.admin.dispose()


class PostgresOverSocket:
    """A throwaway PostgreSQL cluster that listens on a unix socket only, in a private
    directory, and can be stopped and started again: a database server going away for real.

    As root, its tools run as the ``postgres`` user (the server refuses to run as root).
    """

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        # Under /tmp: the postgres user must reach it, and a socket path stays short.
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-pg-socket.", dir="/tmp"))
        self.port = free_port()   # names the socket file; nothing listens on TCP
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self.url = (f"postgresql+psycopg://postgres@/gateway_test"
                    f"?host={self.dir}&port={self.port}")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bin / tool), *args], cwd=self.dir,
                       check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        self._run("initdb", f"--pgdata={self.dir / 'data'}", "--username=postgres",
                  "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        self.start()
        self._run("createdb", f"--host={self.dir}", f"--port={self.port}",
                  "--username=postgres", "gateway_test")

    def start(self) -> None:
        self._run("pg_ctl", f"--pgdata={self.dir / 'data'}", f"--log={self.dir / 'log'}",
                  "--wait", "--timeout=60", "--silent", "start", "-o",
                  f"-p {self.port} -c listen_addresses='' -k {self.dir} -c fsync=off")

    def stop(self) -> None:
        self._run("pg_ctl", f"--pgdata={self.dir / 'data'}", "--mode=fast", "--wait",
                  "--silent", "stop")

    def destroy(self) -> None:
        if (self.dir / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", f"--pgdata={self.dir / 'data'}", "--mode=immediate",
                      "--wait", "--silent", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres_over_socket():
    if not postgres_test_url():
        pytest.skip("runs in the PostgreSQL pass (scripts/test)")
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or \
        [found for found in [shutil.which("initdb")] if found]
    if not initdbs:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    cluster = PostgresOverSocket(Path(initdbs[-1]).parent)
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()


def booked_at_gosend(app, sim) -> tuple[str, str, str]:
    """A request booked at the GO-SEND simulator, whose driver never moves: (key, id, order)."""
    key = new_key(app, key_type="test")
    created = app.test_client().post(CREATE, json={**MEDICINE_BODY, "notes_for_courier":
                                                   "[sim:stall]"}, headers=bearer(key))
    assert created.status_code == 202, created.get_json()
    request_id = created.get_json()["id"]
    wait_for_status(app, request_id, "booked")
    return key, request_id, bookings(sim)[0]["orderNo"]


def picked_report(order_no: str) -> dict:
    return {"entity_id": order_no, "status": "picked", "event_id": f"picked-{order_no}",
            "event_date": 1700000000000}


WEBHOOK = "/webhooks/gosend_sandbox"
TOKEN = {"X-Callback-Token": GOSEND_TEST_CREDENTIALS["webhook_token"]}


def retry_until_accepted(client, url, **kw):
    """What a provider does with a 503: send it again a little later."""
    deadline = time.monotonic() + 15
    while (answer := client.post(url, **kw)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    return answer


def test_the_api_answers_503_while_the_database_is_away_and_recovers_by_itself(
        app, gateway_database_url):
    client = app.test_client()
    key = new_key(app, key_type="test")
    before = client.post(CREATE, json=MEDICINE_BODY, headers=bearer(key))
    assert before.status_code == 202
    body = {**MEDICINE_BODY, "prescription_id": "RX-DURING-OUTAGE"}
    retry_key = {"Idempotency-Key": "during-the-outage", **bearer(key)}

    if gateway_database_url.startswith("sqlite"):
        outage = SqliteLockedOut(gateway_database_url, seconds=12)   # past the 10 s busy timeout
    else:
        outage = PostgresRefusing(gateway_database_url)
    with outage:
        refused = client.post(CREATE, json=body, headers=retry_key)
        assert_error_shape(refused, 503)
        assert refused.get_json()["code"] == "service_unavailable"
        assert refused.headers["Retry-After"]
        if not gateway_database_url.startswith("sqlite"):   # reads need no lock on SQLite
            assert_error_shape(client.get(f"/api/v1/requests/{before.get_json()['id']}",
                                          headers=bearer(key)), 503)
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.get_json()["checks"]["database"] != "ok"

    # Back: the same request (same idempotency key) is accepted as new, because nothing of
    # the refused one was stored; reads work again without a restart.
    deadline = time.monotonic() + 15
    while (accepted := client.post(CREATE, json=body, headers=retry_key)).status_code == 503 \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert accepted.status_code == 202, accepted.get_json()
    replay = client.post(CREATE, json=body, headers=retry_key)
    assert replay.status_code == 202 and replay.get_json()["id"] == accepted.get_json()["id"]
    listed = client.get("/api/v1/requests", headers=bearer(key)).get_json()["requests"]
    assert sorted(r["reference"] for r in listed) == sorted(
        [MEDICINE_BODY["prescription_id"], "RX-DURING-OUTAGE"])
    assert client.get("/readyz").status_code == 200


def test_a_webhook_that_arrives_during_the_outage_is_answered_503_and_applied_when_resent(
        gosend_app, gateway_gosend, gateway_database_url):
    app = gosend_app()
    client = app.test_client()
    key, request_id, order_no = booked_at_gosend(app, gateway_gosend)

    if gateway_database_url.startswith("sqlite"):
        outage = SqliteLockedOut(gateway_database_url, seconds=12)   # past the 10 s busy timeout
    else:
        outage = PostgresRefusing(gateway_database_url)
    with outage:
        refused = client.post(WEBHOOK, json=picked_report(order_no), headers=TOKEN)
        assert_error_shape(refused, 503)
        assert refused.get_json()["code"] == "service_unavailable"
        assert refused.headers["Retry-After"]

    resent = retry_until_accepted(client, WEBHOOK, json=picked_report(order_no), headers=TOKEN)
    assert resent.status_code == 200 and resent.get_json() == {"received": 1, "duplicates": 0}
    drain(app)
    assert detail(app, key, request_id)["status"] == "picked_up"


def test_a_server_stopped_under_a_unix_socket_connection_answers_503_not_500(
        postgres_over_socket, gosend_app, gateway_gosend):
    """psycopg says "connection to server on socket ... failed: No such file or directory":
    no words of a TCP refusal, yet the same outage."""
    app = gosend_app(database_url=postgres_over_socket.url)
    client = app.test_client()
    key, request_id, order_no = booked_at_gosend(app, gateway_gosend)

    postgres_over_socket.stop()
    try:
        created = client.post(CREATE, json={**MEDICINE_BODY, "prescription_id": "RX-SOCKET"},
                              headers=bearer(key))
        assert_error_shape(created, 503)
        assert_error_shape(client.get(f"/api/v1/requests/{request_id}", headers=bearer(key)),
                           503)
        webhook = client.post(WEBHOOK, json=picked_report(order_no), headers=TOKEN)
        assert_error_shape(webhook, 503)
        assert webhook.headers["Retry-After"]
        assert client.get("/readyz").status_code == 503
    finally:
        postgres_over_socket.start()

    resent = retry_until_accepted(client, WEBHOOK, json=picked_report(order_no), headers=TOKEN)
    assert resent.status_code == 200 and resent.get_json() == {"received": 1, "duplicates": 0}
    drain(app)
    assert detail(app, key, request_id)["status"] == "picked_up"
    assert client.get("/readyz").status_code == 200
