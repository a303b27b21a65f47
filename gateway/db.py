"""The database connection: SQLite (WAL) by default, PostgreSQL when configured.

Two kinds of unit of work, so that writers never trip over each other:

* :meth:`Database.read` -- a session for queries;
* :meth:`Database.write` -- a session whose transaction takes the write lock up front
  (``BEGIN IMMEDIATE`` on SQLite). A deferred SQLite transaction that reads and then writes
  fails at once with "database is locked" when another writer committed in between; taking
  the lock first makes it wait (``busy_timeout``) instead. PostgreSQL needs nothing special.

Unavailability of the database surfaces as :class:`DatabaseUnavailable` so the API can answer
503 with the one error shape rather than a 500. :func:`is_outage` tells an outage from a
failed statement by what the driver says in codes, never by its English messages (which
differ between a TCP and a unix-socket connection, between versions and locales).

The error of a failed statement never carries the values it was given: the engine hides its
parameters (``hide_parameters``), and :func:`_without_values` cuts the database's own detail
(PostgreSQL's "Key (nik)=(...) already exists", "Failing row contains (...)", "invalid input
syntax for type uuid: \"...\"") down to the first line, before the error is raised. These
errors end in logs and in rq's failed-job records, and the values are NIKs and addresses.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .writeturns import WriteTurns, WriteTurnTimeout

WRITE_OPTION = "gateway_write"
log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database could not be reached or is locked beyond the busy timeout."""


#: SQLSTATE classes of a server that cannot serve us now: 08 connection exception, 53
#: insufficient resources (disk full, out of memory, too many connections)
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53"})
#: and single codes: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now
OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
#: seconds a writer waits for SQLite's write lock (its busy timeout, and the writers' turns)
SQLITE_WAIT_SECONDS = 10

#: SQLite's primary result codes of the same kind: busy/locked past the busy timeout, the
#: file that cannot be opened, read or written, a full disk
SQLITE_OUTAGE_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                                 sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
                                 sqlite3.SQLITE_FULL})


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database is away for now" (answer 503, try again) rather than
    "this statement failed" (a bug or bad data: 500 or a 4xx of its own).

    * SQLAlchemy saw the connection die (``connection_invalidated``) or no pooled connection
      came in time (``sqlalchemy.exc.TimeoutError``);
    * SQLite: the error's result code (``sqlite_errorcode``; its low byte is the primary code);
    * PostgreSQL: the SQLSTATE (psycopg's ``sqlstate``, psycopg2's ``pgcode``);
    * a driver ``OperationalError`` with no SQLSTATE at all: the client never got an answer
      from a server (refused, no socket file, connection lost).
    """
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    original = exc.orig
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if isinstance(original, sqlite3.Error):
        return sqlite_code is not None and sqlite_code & 0xFF in SQLITE_OUTAGE_CODES
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if state:
        return state[:2] in OUTAGE_SQLSTATE_CLASSES or state in OUTAGE_SQLSTATES
    return isinstance(exc, sa_exc.OperationalError)


def default_database_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'gateway.db'}"


#: where a database's first message line starts quoting the value it refused
_QUOTED_VALUE = re.compile(r':\s*".*$')


def _without_values(context) -> None:
    """``handle_error``: keep the first line of the driver's message, without a quoted value,
    in the driver's exception and in SQLAlchemy's that wraps it."""
    orig, wrapped = context.original_exception, context.sqlalchemy_exception
    # Only the errors about the data itself carry values; the wording of connection errors
    # stays whole (``gateway.errors`` reads it to answer 503).
    if not isinstance(wrapped, IntegrityError | DataError) \
            or not orig.args or not isinstance(orig.args[0], str):
        return
    text = orig.args[0]
    first = _QUOTED_VALUE.sub("", text.strip().splitlines()[0] if text.strip() else text)
    if first == text:
        return
    orig.args = (first, *orig.args[1:])
    if wrapped is not None and wrapped.orig is orig:
        wrapped.args = (f"({type(orig).__module__}.{type(orig).__name__}) {first}",)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_WAIT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def gathered_after_commit(session: Session, key: str, run) -> list:
    """The list of items this transaction gathers under ``key``; once it commits,
    ``run(items)`` is called with all of them, once (``Database.write``'s after-commit steps).

    For work that is cheaper done together: a group commit's dispatches listed in one Redis
    round trip, its new jobs enqueued in one pipeline."""
    items = session.info.get(key)
    if items is None:
        items = session.info[key] = []
        session.info.setdefault("after_commit", []).append(lambda: run(items))
    return items


#: ``session.info`` key of the rows :func:`insert_at_commit` keeps: table -> rows
INSERTS = "inserts_at_commit"


def insert_at_commit(session: Session, table, row) -> None:
    """Have ``row`` inserted into ``table`` when ``session``'s transaction commits, in one
    INSERT per table with the transaction's other such rows (:func:`insert_gathered`).

    ``row`` is a dict, or an ORM object never added to a session: its row is read when it is
    inserted (:func:`row_of`), so what the transaction changes on it until then is written.

    For rows made and written in one go (a new request, its first timeline steps, its
    accepted notice): they skip the ORM's unit of work (an object, its state and its events
    for each row), which cost more than the SQL itself for the rows of a create. A query in
    the same transaction does not see them before :func:`insert_gathered`; a gathered row may
    refer to rows in the database or gathered before it, never to an ORM object still
    pending (the gathered rows go first, and ORM objects may refer to them)."""
    session.info.setdefault(INSERTS, {}).setdefault(table, []).append(row)


def row_of(obj) -> dict:
    """The row an ORM object of a table would insert: its columns' values, with each
    column's default where the value is None (as the ORM's own insert does)."""
    values = obj.__dict__
    row = {}
    for column in obj.__table__.columns:
        value = values.get(column.key)
        default = column.default
        if value is None and default is not None:
            value = default.arg(None) if default.is_callable else default.arg
        row[column.key] = value
    return row


def gathered_inserts(session: Session) -> int:
    """How many rows :func:`insert_at_commit` holds for ``session``'s transaction."""
    return sum(len(rows) for rows in session.info.get(INSERTS, {}).values())


def insert_gathered(session: Session) -> None:
    """Insert the rows :func:`insert_at_commit` kept, one executemany per table, a table
    after those it refers to (rows of one table in the order gathered). Runs at
    ``before_commit`` (every session of :class:`Database`), before the ORM's flush; a
    transaction that must see them before its commit (a capacity count) calls it itself."""
    gathered = session.info.pop(INSERTS, None)
    if not gathered:
        return
    connection = session.connection()
    for table in sorted(gathered, key=_dependency_rank):
        connection.execute(table.insert(), [row if isinstance(row, dict) else row_of(row)
                                            for row in gathered[table]])


@functools.cache
def _dependency_rank(table) -> int:
    """The table's place in its metadata's order of foreign-key dependencies."""
    return table.metadata.sorted_tables.index(table)


def _at_commit(session_factory) -> None:
    """Have every session of ``session_factory`` insert its gathered rows when it commits,
    and forget them when it rolls back."""
    event.listen(session_factory, "before_commit", insert_gathered)
    # a savepoint's rollback is not the transaction's: :func:`savepoint` drops its own rows
    event.listen(session_factory, "after_soft_rollback", _forget_gathered)


def _forget_gathered(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(INSERTS, None)


@contextmanager
def savepoint(session: Session) -> Iterator[Session]:
    """A ``SAVEPOINT`` inside ``session``'s transaction, whose failure undoes its own work
    only: its rows, and what it gathered in ``session.info`` for later (the after-commit
    steps, the items of :func:`gathered_after_commit`, the events the audit links at commit,
    every list ``session.info`` holds). The neighbours' work before and after it stays.

    The exception is raised again, once the savepoint has been rolled back: the caller
    decides what a failed piece means (a provider report handed to its own job,
    ``gateway.tracking``). ``session.info``'s other values (caches such as ``callback_urls``)
    are kept: they hold what the database says, not work.
    """
    kept = {key: (value, len(value)) for key, value in session.info.items()
            if isinstance(value, list)}
    gathered = {table: len(rows) for table, rows in session.info.get(INSERTS, {}).items()}
    try:
        with session.begin_nested():
            yield session
    except BaseException:
        for key in [k for k, v in session.info.items() if isinstance(v, list) and k not in kept]:
            del session.info[key]
        for key, (items, length) in kept.items():
            del items[length:]               # in place: after-commit steps hold the list
            session.info[key] = items
        rows = session.info.get(INSERTS, {})   # the rows to insert at commit
        for table in list(rows):
            del rows[table][gathered.get(table, 0):]
            if not rows[table]:
                del rows[table]
        raise


class Database:
    """Engine and session factory of one app (a Flask extension: ``init_app`` style)."""

    def __init__(self, url: str):
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        #: writers take turns at a file database's one write lock (``gateway.writeturns``)
        self.turns: WriteTurns | None = None
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.turns = WriteTurns(Path(parsed.database).resolve(), SQLITE_WAIT_SECONDS)
        kwargs = {"pool_pre_ping": True, "hide_parameters": True}
        if not self.is_sqlite:
            kwargs.update(pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})
        else:
            kwargs["connect_args"] = {"timeout": SQLITE_WAIT_SECONDS}
        self.engine = create_engine(url, **kwargs)
        event.listen(self.engine, "handle_error", _without_values)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        _at_commit(self.session_factory)
        # A forked child (gunicorn worker, rq's forking Worker) must not share the parent's
        # connections; it opens its own.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (db := ref()) and db._after_fork())

    def _after_fork(self) -> None:
        self.engine.dispose(close=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.session_factory() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any exception.

        Callables in ``session.info["after_commit"]`` run once the commit has succeeded (to
        enqueue jobs for what was just stored); their failures are logged, not raised: the
        database already holds the work and the sweep will find it. On a file SQLite database
        the transaction waits its turn first (``gateway.writeturns``), and lets the next
        writer in before those steps run.
        """
        with self.session_factory() as session, self._turn():
            session.connection(execution_options={WRITE_OPTION: True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        for hook in session.info.pop("after_commit", []):
            try:
                hook()
            except Exception as exc:
                log.warning("after-commit step deferred to the sweep: %s", type(exc).__name__)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if self.turns is None:
            yield
            return
        try:
            with self.turns.turn():
                yield
        except WriteTurnTimeout as exc:
            raise DatabaseUnavailable(str(exc)) from None

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
