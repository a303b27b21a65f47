"""The database: migrations that match the models, and writers that never trip each other."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from gateway.audit import verify_chain
from gateway.db import is_outage
from gateway.events import Event
from gateway.migrate import current_revision, head_revision
from gateway.models import Base


def test_the_migrations_build_exactly_the_models(gateway):
    assert current_revision(gateway.db) == head_revision(gateway.db)
    with gateway.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(gateway):
    if not gateway.db.is_sqlite:
        return
    with gateway.db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10000


def test_concurrent_writers_keep_one_unbroken_audit_chain(gateway):
    errors = []

    def writer(n):
        try:
            for i in range(20):
                with gateway.db.write() as session:
                    gateway.track(session, Event("test.concurrent", target=f"w{n}:{i}"))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with gateway.db.read() as session:
        result = verify_chain(session)
    assert result.ok and result.checked == 80


@pytest.mark.parametrize("statement", ["SELECT * FROM no_such_table", "SELEC 1",
                                       "INSERT INTO agencies (id) VALUES (NULL)"])
def test_a_failed_statement_is_not_taken_for_a_database_outage(gateway, statement):
    """Only an outage is 503 ("try again"); a statement that fails is our bug, and says so."""
    with pytest.raises(DBAPIError) as failed, gateway.db.engine.begin() as connection:
        connection.execute(text(statement))
    assert not is_outage(failed.value)


def test_a_database_that_cannot_be_reached_is_an_outage(gateway, tmp_path):
    """Whatever the words: no file where SQLite should open one, no server on the socket."""
    if gateway.db.is_sqlite:
        url = f"sqlite:///{tmp_path / 'missing-dir' / 'gateway.db'}"
    else:
        url = f"postgresql+psycopg://nobody@/gateway?host={tmp_path}&port=1"
    engine = create_engine(url)
    with pytest.raises(DBAPIError) as failed, engine.connect():
        pass
    engine.dispose()
    assert is_outage(failed.value)
