"""Pytest fixtures for plugin authors: a real gateway around the plugin under test.

Installed with the gateway as the ``gateway`` entry point of ``pytest11``, so any test suite
in the gateway's environment has them without a ``conftest.py`` import (turn them off with
``-p no:gateway``). Every name starts with ``gateway_``, so a project's own fixtures (the
gateway's own ``make_app``, ``redis_url``, ...) never collide with them.

Nothing is faked: a real Redis server (``$GATEWAY_TEST_REDIS_URL`` or a private
``redis-server`` started once per session), a migrated SQLite file per app, the GO-SEND
simulator on a free port, the app served over HTTP so that the simulator's webhooks reach
it, and a real rq worker that drains the queues in the test's process.

The fixtures work under pytest-xdist (``pytest -n 4``): each worker process gets its own
Redis database (worker ``gwN`` uses database N of ``$GATEWAY_TEST_REDIS_URL``'s server, or
a private server of its own) and, with ``$GATEWAY_TEST_DATABASE_URL``, its own PostgreSQL
database (``<name>_gwN``, created on first use), so workers never wipe each other's data.

Which plugins the app is built with is the ``gateway_plugins`` fixture: ``None`` (the
default) loads the installed entry points, as production does; a plugin's ``conftest.py``
usually overrides it with exactly its own module (the installed couriers, GO-SEND's among
them, are loaded either way)::

    @pytest.fixture
    def gateway_plugins():
        return [my_plugin]
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

#: What the GO-SEND simulator accepts and the ``gosend_sandbox`` courier sends (test-only).
GOSEND_TEST_CREDENTIALS = {"client_id": "plugin-tests", "pass_key": "plugin-tests-pass-key",
                           "webhook_token": "plugin-tests-webhook-token-0000"}
#: The courier instance wired to the simulator; requests of test keys go there.
GOSEND_COURIER = "gosend_sandbox"
# Console passwords hashed at a test cost (1 MiB, milliseconds) instead of the default's
# 32 MiB and quarter second: tests sign in hundreds of times. Only allowed in mode sandbox.
TEST_PASSWORD_HASH = "scrypt:1024:8:1"  # noqa: S105 (a hashing method, not a password)
CONSOLE_PASSWORD = "plugin-tests-console-password"  # noqa: S105 (a throwaway test user)


#: Redis databases per server (``databases 16`` by default): workers use 0 up to this.
REDIS_DATABASES = 16


def xdist_worker_number() -> int | None:
    """The number N of the pytest-xdist worker ``gwN`` running this process; None when the
    tests run in one process."""
    found = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(found.group(1)) if found else None


def worker_redis_url(url: str, offset: int = 0) -> str:
    """``url`` moved to this worker's own database: the given database plus the worker's
    number plus ``offset`` (a test that wants a second database of its own passes one).

    Every URL the tests build (apps, ``gateway worker`` subprocesses, rq workers) comes from
    this one, so a worker's flushes and queues never reach another worker's.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit

    from redis.connection import parse_url

    database = int(parse_url(url).get("db") or 0) + (xdist_worker_number() or 0) + offset
    if database >= REDIS_DATABASES:
        raise pytest.UsageError(f"Redis database {database} does not exist: use fewer "
                                f"xdist workers (-n) or a server with more databases")
    parts = urlsplit(url)
    if parts.scheme == "unix":   # unix:///path/redis.sock?db=N
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", database)]
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"]
    return parts._replace(path=f"/{database}", query=urlencode(query)).geturl()


@pytest.fixture(scope="session")
def gateway_redis_url(tmp_path_factory):
    """A Redis server for the session: ``$GATEWAY_TEST_REDIS_URL`` or a private one. Under
    pytest-xdist each worker gets a database of its own on that server."""
    url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if url:
        yield worker_redis_url(url)
        return
    from gateway.redis_server import EmbeddedRedis, redis_binary
    from gateway.testing import free_port

    server = EmbeddedRedis(tmp_path_factory.mktemp("gateway-redis"), port=free_port(),
                           binary=redis_binary())
    yield server.start()
    server.stop()


@pytest.fixture
def gateway_redis(gateway_redis_url):
    """A connection to that Redis, its database flushed before and after the test."""
    from redis import Redis

    conn = Redis.from_url(gateway_redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


def worker_postgres_url(url: str) -> str:
    """``url`` moved to this xdist worker's own database, ``<name>_gwN``, created through the
    server's ``postgres`` database when missing. Unchanged without xdist."""
    number = xdist_worker_number()
    if number is None:
        return url
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    given = make_url(url)
    mine = f"{given.database}_gw{number}"
    admin = create_engine(given.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": mine}).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{mine}"'))
    finally:
        admin.dispose()
    return given.set(database=mine).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def gateway_postgres_url():
    """``$GATEWAY_TEST_DATABASE_URL`` (this xdist worker's own database of that server), or
    None. Its ``public`` schema is dropped by every test that uses it: never point it at
    data you keep."""
    url = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    return worker_postgres_url(url) if url else None


_MIGRATED: dict[str, object] = {}   # this process's database at the head revision, by URL


def migrate_test_database(db) -> None:
    """``gateway.migrate.upgrade(db)``, faster: a test's new, empty database is replaced by a
    copy of one this process migrated once. On SQLite a file copy; on PostgreSQL the database
    is made again from a template database (``<name>_head``, some 0.1 s against 0.4 s of
    Alembic a test). A database that already has tables (a second app on it) is upgraded as
    usual, and so is anything when the shortcut is not possible."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from gateway.migrate import upgrade

    url = make_url(db.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        copy = _SQLiteCopy(Path(url.database))
    elif url.get_backend_name() == "postgresql":
        copy = _PostgresCopy(url)
    else:
        upgrade(db)
        return
    key = "sqlite" if isinstance(copy, _SQLiteCopy) else db.url
    if key in _EMPTIED_AT_HEAD:     # gateway_database_url just emptied it, schema kept
        _EMPTIED_AT_HEAD.discard(key)
        return
    template = _MIGRATED.get(key)
    if template is not None and not inspect(db.engine).get_table_names():
        db.dispose()
        if copy.restore(template):
            return
    upgrade(db)
    if key not in _MIGRATED:
        db.dispose()
        _MIGRATED[key] = copy.save()
        if isinstance(copy, _PostgresCopy):
            _HEAD_SHAPE[key] = _PostgresHead.read(db.url)


class _SQLiteCopy:
    def __init__(self, path: Path):
        self.path = path

    def save(self) -> Path:
        folder = tempfile.mkdtemp(prefix="gateway-migrated-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = Path(folder) / "head.db"
        shutil.copyfile(self.path, template)
        return template

    def restore(self, template: Path) -> bool:
        for journal in (f"{self.path}-wal", f"{self.path}-shm"):
            Path(journal).unlink(missing_ok=True)
        shutil.copyfile(template, self.path)
        return True


class _PostgresCopy:
    def __init__(self, url):
        self.url = url
        self.name = url.database

    def _admin(self, statements) -> bool:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        admin = create_engine(self.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                for statement in statements:
                    connection.execute(text(statement))
            return True
        except SQLAlchemyError:     # another session on it, or a server before 13: upgrade
            return False
        finally:
            admin.dispose()

    def save(self) -> str | None:
        template = f"{self.name}_head"
        made = self._admin([f'DROP DATABASE IF EXISTS "{template}"',
                            f'CREATE DATABASE "{template}" TEMPLATE "{self.name}"'])
        return template if made else None

    def restore(self, template: str) -> bool:
        if self._admin([f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)',
                        f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"']):
            return True
        self._admin([f'CREATE DATABASE "{self.name}"'])    # when only the copy failed
        return False


_EMPTIED_AT_HEAD: set[str] = set()  # URLs emptied with their schema kept, not yet built on
_HEAD_SHAPE: dict[str, _PostgresHead] = {}     # what this process's database is at head


class _PostgresHead:
    """A migrated database's shape (its tables, its revision) and the rows the migrations
    themselves wrote (the audit chain's head), so that a later test's database is emptied
    in one TRUNCATE instead of being made again: some 10 ms against 0.3 s a test (with
    ``fsync`` off, as ``scripts/test`` runs its cluster; 60 to 120 ms with it on), most of
    it the server's, which the parallel tests share."""

    def __init__(self, tables: tuple[str, ...], sequences: tuple[str, ...], revision: str,
                 seeded: dict[str, list[dict]]):
        #: every table but alembic_version, those that refer to others first
        self.tables, self.sequences = tables, sequences
        self.revision, self.seeded = revision, seeded

    @staticmethod
    def _shape(connection) -> tuple[frozenset[str], frozenset[str]]:
        from sqlalchemy import text

        return (frozenset(connection.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()),
                frozenset(connection.execute(text(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))
                    .scalars()))

    @classmethod
    def read(cls, url: str) -> _PostgresHead | None:
        from sqlalchemy import MetaData, create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                tables = MetaData()
                tables.reflect(connection)
                order = tuple(t.name for t in reversed(tables.sorted_tables)
                              if t.name != "alembic_version")
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")).scalar_one()
                # names from the catalogue, not from a caller
                seeded = {name: [dict(row) for row in connection.execute(
                    text(f'SELECT * FROM "{name}"')).mappings()]  # noqa: S608
                    for name in order}
                _tables, sequences = cls._shape(connection)
            return cls(order, tuple(sorted(sequences)), revision,
                       {k: v for k, v in seeded.items() if v})
        except SQLAlchemyError:
            return None
        finally:
            engine.dispose()

    def empty(self, url: str) -> bool:
        """Empty the database at ``url`` if it still has exactly this shape (a test may have
        dropped or downgraded it), keeping the schema and the migrations' own rows.
        :return: False when it could not (then the caller starts from nothing)"""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                # A process a test killed may still hold a lock: then start over instead.
                connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                tables, sequences = self._shape(connection)
                if tables != {*self.tables, "alembic_version"} \
                        or sequences != set(self.sequences) or connection.execute(
                            text("SELECT version_num FROM alembic_version")).scalars().all() \
                        != [self.revision]:
                    return False
                # TRUNCATE, not DELETE (10 ms against 2 with fsync off): a truncated table
                # starts from an empty file, so a query without ORDER BY reads rows in the
                # order they were written, as in a new database (after a DELETE they fill the
                # old pages' free space, and a test relying on that order flickers)
                tables = ", ".join(f'"{name}"' for name in self.tables)
                connection.execute(text("; ".join(
                    [f"TRUNCATE {tables} RESTART IDENTITY CASCADE"]
                    + [f'ALTER SEQUENCE "{name}" RESTART' for name in self.sequences])))
                for name, rows in self.seeded.items():
                    columns = list(rows[0])
                    connection.execute(text(
                        f'INSERT INTO "{name}" ({", ".join(columns)}) '  # noqa: S608
                        f'VALUES ({", ".join(":" + c for c in columns)})'), rows)
            return True
        except SQLAlchemyError:
            return False
        finally:
            engine.dispose()


@pytest.fixture
def gateway_database_url(request, tmp_path, gateway_postgres_url):
    """The database of this test: an empty SQLite file, or with ``$GATEWAY_TEST_DATABASE_URL``
    that PostgreSQL database with its ``public`` schema dropped and created again (pass it to
    ``gateway_make_app(database_url=...)`` to run your tests on PostgreSQL too).

    A test that builds its apps with ``gateway_make_app`` (or the gateway's own ``make_app``)
    may instead get it migrated and emptied of every row, which is what the app's first
    build would make of it anyway."""
    if not gateway_postgres_url:
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    _EMPTIED_AT_HEAD.discard(gateway_postgres_url)
    head = _HEAD_SHAPE.get(gateway_postgres_url)
    builds_apps = not {"gateway_make_app", "make_app"}.isdisjoint(request.fixturenames)
    if builds_apps and head is not None and head.empty(gateway_postgres_url):
        _EMPTIED_AT_HEAD.add(gateway_postgres_url)
        return gateway_postgres_url
    from sqlalchemy import create_engine, text

    engine = create_engine(gateway_postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return gateway_postgres_url


@pytest.fixture
def gateway_plugins():
    """The plugins apps are built with; None means the installed ``gateway`` entry points.
    Override it in your ``conftest.py`` to test exactly your plugin (installed couriers, of
    the ``gateway.couriers`` group, are loaded either way)."""
    return None


@pytest.fixture
def gateway_config_dir(tmp_path):
    """The configuration directory apps read: empty by default, so every setting has its
    default and every service its ``config_schema`` defaults. Override it to test your
    plugin with a ``services.yaml`` of your own."""
    path = tmp_path / "gateway-config"
    path.mkdir()
    return path


@pytest.fixture
def gateway_gosend():
    """The GO-SEND simulator on a free port, its clock stepping every 0.2 s.

    ``.bookings`` (by order number) and ``.requests`` (every call received) show what the
    courier was told; ``.url`` is where it listens.
    """
    from gateway.couriers.gosend.simulator import GoSendSimulator
    from gateway.testing import ServerThread

    sim = GoSendSimulator(step_seconds=0.2, slow_seconds=2.0, **GOSEND_TEST_CREDENTIALS)
    with ServerThread(sim.create_app()) as server:
        sim.url = server.url
        sim.start_clock()
        yield sim
        sim.stop_clock()


@pytest.fixture
def gateway_make_app(tmp_path, gateway_config_dir, gateway_redis_url, gateway_redis,
                     gateway_plugins, gateway_gosend):
    """Build apps: ``gateway_make_app(plugins=None, services=None, couriers=None, **core)``.

    Each app gets its own migrated SQLite file, the session's Redis, jobs retried at once,
    the ``gosend_sandbox`` courier on the simulator, and is served over HTTP
    (``app.server_url``) so the simulator's webhooks reach it. ``services`` and
    ``couriers`` are laid over the config files' sections; ``core`` overrides
    ``gateway.yaml`` keys. ``plugins`` defaults to the ``gateway_plugins`` fixture.
    """
    from gateway import create_app
    from gateway.testing import ServerThread

    built, numbers = [], itertools.count(1)

    def make(plugins=None, services=None, couriers=None, **core):
        number = next(numbers)
        config = {"config_dir": str(gateway_config_dir),
                  "data_dir": str(tmp_path / f"gateway-data-{number}"),
                  "database_url": f"sqlite:///{tmp_path / f'gateway-{number}.db'}",
                  "redis_url": gateway_redis_url,
                  "jobs": {"intervals": [0, 0], "job_timeout": 30},
                  **({} if core.get("mode") == "live"
                     else {"console": {"password_hash": TEST_PASSWORD_HASH}}),
                  "couriers": {GOSEND_COURIER: {"adapter": "gosend", "sandbox": True,
                                                "base_url": gateway_gosend.url,
                                                "timeout_seconds": 2,
                                                **GOSEND_TEST_CREDENTIALS},
                               **(couriers or {})},
                  "services": services or {}, **core}
        app = create_app(config, plugins=gateway_plugins if plugins is None else plugins)
        app.testing = True
        migrate_test_database(app.extensions["gateway"].db)
        server = ServerThread(app).__enter__()
        built.append((app, server))
        app.server_url = server.url
        gateway_gosend.webhook_url = f"{server.url}/webhooks/{GOSEND_COURIER}"
        return app

    yield make
    for app, server in built:
        server.__exit__(None, None, None)
        app.extensions["gateway"].db.dispose()


@pytest.fixture
def gateway_app(gateway_make_app):
    """An app built with ``gateway_plugins`` (see :func:`gateway_make_app`)."""
    return gateway_make_app()


@pytest.fixture
def gateway_make_agency(request):
    """Create agencies: ``gateway_make_agency(services=None, key_type="test", name=None,
    callback_url=None, app=None)`` returns a client that sends its key (``.key``,
    ``.agency``). ``app`` defaults to ``gateway_app``; ``services`` to all of its services."""
    from gateway.agencies import create_agency
    from gateway.testing import AgencyClient

    numbers = itertools.count(1)

    def make(services=None, key_type="test", name=None, callback_url=None, app=None):
        app = app or request.getfixturevalue("gateway_app")
        gateway = app.extensions["gateway"]
        agency, key = create_agency(gateway, name or f"Test agency {next(numbers)}",
                                    sorted(services or gateway.services), callback_url,
                                    actor="test", key_type=key_type)
        return AgencyClient(app.test_client(), key, agency)

    return make


@pytest.fixture
def gateway_agency(gateway_make_agency):
    """An agency allowed every service of ``gateway_app``, with a test key."""
    return gateway_make_agency()


@pytest.fixture
def gateway_worker(gateway_app):
    """``gateway_worker.drain()`` runs the queued jobs; ``.wait_for_status(id, "delivered")``
    drains until the request gets there (or fails the test after ``timeout`` seconds)."""
    from gateway.testing import Worker

    return Worker(gateway_app)


@pytest.fixture
def gateway_console(gateway_app):
    """The console of ``gateway_app``, signed in as a new admin."""
    from gateway.console.users import create_admin
    from gateway.testing import ConsoleClient

    create_admin(gateway_app.extensions["gateway"], "plugin-tests-admin", CONSOLE_PASSWORD,
                 "admin", language="en")
    return ConsoleClient.sign_in(gateway_app, "plugin-tests-admin", CONSOLE_PASSWORD)
