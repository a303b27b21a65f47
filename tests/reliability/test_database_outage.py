"""The database unavailable for a moment: the API answers 503 in the error shape (never a
500), stores nothing half-way, and recovers by itself when the database is back.

On SQLite the outage is another process holding the write lock past the busy timeout; on
PostgreSQL, the database refusing connections and the gateway's own being cut. Either way
the gateway is not restarted.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import MEDICINE_BODY, bearer, new_key
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


def test_the_api_answers_503_while_the_database_is_away_and_recovers_by_itself(
        app, database_url):
    client = app.test_client()
    key = new_key(app, key_type="test")
    before = client.post(CREATE, json=MEDICINE_BODY, headers=bearer(key))
    assert before.status_code == 202
    body = {**MEDICINE_BODY, "prescription_id": "RX-DURING-OUTAGE"}
    retry_key = {"Idempotency-Key": "during-the-outage", **bearer(key)}

    if database_url.startswith("sqlite"):
        outage = SqliteLockedOut(database_url, seconds=12)   # past the 10 s busy timeout
    else:
        outage = PostgresRefusing(database_url)
    with outage:
        refused = client.post(CREATE, json=body, headers=retry_key)
        assert_error_shape(refused, 503)
        assert refused.get_json()["code"] == "service_unavailable"
        assert refused.headers["Retry-After"]
        if not database_url.startswith("sqlite"):   # reads need no lock on SQLite
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
