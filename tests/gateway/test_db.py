"""The database: migrations that match the models, and writers that never trip each other."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from gateway.audit import verify_chain
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
