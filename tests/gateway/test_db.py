"""The database: migrations that match the models, and writers that never trip each other."""

from __future__ import annotations

import logging
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from gateway.audit import verify_chain
from gateway.db import gathered_after_commit, insert_at_commit, is_outage, savepoint
from gateway.events import Event
from gateway.migrate import current_revision, head_revision
from gateway.models import Agency, AuditRecord, Base


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


def test_a_failed_savepoint_takes_back_only_its_own_after_commit_work_and_audit_events(
        gateway):
    ran = []

    def later(name):
        return lambda: ran.append(name)

    with gateway.db.write() as session:
        session.info.setdefault("after_commit", []).append(later("before"))
        gathered_after_commit(session, "test:shared",
                              lambda items: ran.append(("shared", list(items)))).append(1)
        gateway.track(session, Event("test.savepoint", target="before"))
        with pytest.raises(RuntimeError), savepoint(session):
            session.info["after_commit"].append(later("failed"))
            gathered_after_commit(session, "test:shared", ran.append).append(2)
            gathered_after_commit(session, "test:new",
                                  lambda items: ran.append(("new", list(items)))).append(3)
            gateway.track(session, Event("test.savepoint", target="failed"))
            session.execute(text("UPDATE audit_head SET last_seq = last_seq"))  # a write too
            raise RuntimeError("one piece fails")
        with savepoint(session):
            session.info["after_commit"].append(later("after"))
            gathered_after_commit(session, "test:shared", ran.append).append(4)
            gateway.track(session, Event("test.savepoint", target="after"))

    assert sorted(map(str, ran)) == sorted(map(str, ["before", ("shared", [1, 4]), "after"]))
    with gateway.db.read() as session:
        assert session.scalars(select(AuditRecord.target).where(
            AuditRecord.action == "test.savepoint").order_by(AuditRecord.seq)).all() == [
            "before", "after"]
        assert verify_chain(session).ok


def test_a_failed_savepoint_takes_back_only_its_own_rows_gathered_for_the_commit(gateway):
    """Rows kept to be inserted at the commit (``insert_at_commit``, the create path's) are
    the savepoint's work too: its failure drops its own, never the transaction's others."""
    def agency(name):
        return Agency(name=name, services=[], roles=[], active=True)

    with gateway.db.write() as session:
        insert_at_commit(session, Agency.__table__, agency("gathered before"))
        with pytest.raises(RuntimeError), savepoint(session):
            insert_at_commit(session, Agency.__table__, agency("gathered in the failure"))
            raise RuntimeError("one piece fails")
        with savepoint(session):
            insert_at_commit(session, Agency.__table__, agency("gathered after"))
    with gateway.db.read() as session:
        names = set(session.scalars(select(Agency.name)))
    assert {"gathered before", "gathered after"} <= names
    assert "gathered in the failure" not in names


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


NIK = "3510011203650002"


@pytest.mark.parametrize("row", [
    {"nik": NIK, "note": "first"},         # the same key twice: a unique violation
    {"nik": "3510011203650003", "note": NIK},   # a check violation: the whole row refused
])
def test_a_failing_statement_leaves_no_parameter_in_the_logs(gateway, caplog, row):
    """The attack: make a write fail (a duplicate, a refused value) and read the logs, where
    the error of the statement lands with its traceback (the API's 500 handler, rq's failed
    job, the sweep). Neither SQLAlchemy's ``[parameters: ...]`` nor the database's own
    detail (PostgreSQL's "Key (nik)=(...)" and "Failing row contains (...)") may carry a
    NIK there."""
    log = logging.getLogger("gateway.test")
    with gateway.db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS log_probe (nik VARCHAR(16) PRIMARY KEY,"
                             " note VARCHAR(40) CHECK (note NOT LIKE '35%'))"))
    with gateway.db.write() as session:
        session.execute(text("INSERT INTO log_probe VALUES (:nik, :note)"),
                        {"nik": NIK, "note": "first"})
    with caplog.at_level(logging.INFO):
        with pytest.raises(IntegrityError) as raised, gateway.db.write() as session:
            session.execute(text("INSERT INTO log_probe VALUES (:nik, :note)"), row)
        log.exception("unexpected error")
        log.error("failed: %s", raised.value)
    assert "log_probe" in caplog.text       # the error is there, to be read ...
    assert NIK not in caplog.text           # ... without the values
    assert NIK not in str(raised.value)


def test_a_refused_value_is_not_repeated_in_the_error(gateway, caplog):
    """PostgreSQL quotes the value it could not read ("invalid input syntax ...: \\"...\\"")."""
    if gateway.db.is_sqlite:
        return      # SQLite takes any text for any type
    with pytest.raises(DataError) as raised, gateway.db.read() as session:
        session.execute(text("SELECT CAST(:nik AS uuid)"), {"nik": NIK})
    assert "invalid input syntax" in str(raised.value)
    assert NIK not in str(raised.value)
