"""Shared fixtures: a real Redis server, a real database, apps built with chosen plugins.

* Redis: ``GATEWAY_TEST_REDIS_URL`` when set (CI starts Debian's redis-server), otherwise a
  private redis-server started here on a free port. Each test gets a flushed database.
* Database: a fresh SQLite file per test; with a PostgreSQL URL (see
  :func:`postgres_test_url`), the same tests run against that server, its schema dropped and
  migrated again per test.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import plugins.medicine_delivery
import plugins.tourism_transport
import plugins.umkm_pickup
from gateway import create_app
from gateway.agencies import create_agency
from gateway.migrate import upgrade
from gateway.queues import QueueNames
from gateway.redis_server import EmbeddedRedis, redis_binary

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
SERVICE_PLUGINS = [plugins.medicine_delivery, plugins.umkm_pickup, plugins.tourism_transport]
SERVICE_NAMES = ("medicine_delivery", "umkm_pickup", "tourism_transport")


def pytest_configure(config):
    config.addinivalue_line("markers", "plugin_kit: installs plugins into a fresh virtual "
                                       "environment with pip (under a minute; -m plugin_kit)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(),
                           binary=redis_binary())
    yield server.start()
    server.stop()


@pytest.fixture
def redis_conn(redis_url):
    conn = Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def postgres_test_url() -> str | None:
    """The PostgreSQL database the tests may wipe, if any.

    ``GATEWAY_TEST_DATABASE_URL`` is used as given. ``GATEWAY_DATABASE_URL`` is used too, but
    only when its database name says ``test``: the tests drop its schema, and that variable
    may well point at real data.
    """
    url = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if url:
        return url
    url = os.environ.get("GATEWAY_DATABASE_URL")
    if url:
        if "test" not in (make_url(url).database or ""):
            pytest.exit("GATEWAY_DATABASE_URL names a database without 'test' in its name; "
                        "the tests would wipe it. Use GATEWAY_TEST_DATABASE_URL or a test "
                        "database.", returncode=4)
        return url
    return None


@pytest.fixture
def database_url(tmp_path):
    url = postgres_test_url()
    if url:
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def make_app(tmp_path, database_url, redis_url, redis_conn):
    """Build an app on the repo's config, with overrides and explicit plugins."""
    built = []

    def make(plugins=None, **overrides):
        config = {"config_dir": str(CONFIG_DIR), "data_dir": str(tmp_path / "data"),
                  "database_url": database_url, "redis_url": redis_url,
                  "jobs": {"intervals": [0, 0], "job_timeout": 30},
                  # No courier unless a test asks for one; routing then tries them by name.
                  "couriers": {"gosend_sandbox": {"enabled": False},
                               "own_fleet": {"enabled": False},
                               "goride_sandbox": {"enabled": False},
                               "grab_sandbox": {"enabled": False},
                               "lalamove_sandbox": {"enabled": False},
                               "shuttle": {"enabled": False}},
                  "services": {name: {"couriers": []} for name in SERVICE_NAMES}}
        config.update(overrides)
        app = create_app(config, plugins=SERVICE_PLUGINS if plugins is None else plugins)
        app.testing = True
        upgrade(app.extensions["gateway"].db)
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["gateway"].db.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def gateway(app):
    return app.extensions["gateway"]


@pytest.fixture
def client(app):
    return app.test_client()


class AgencyClient:
    """A test client that always sends one agency's key."""

    def __init__(self, client, key: str, agency):
        self.client, self.key, self.agency = client, key, agency

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.key}", **(headers or {})}

    def get(self, url, headers=None, **kw):
        return self.client.get(url, headers=self._headers(headers), **kw)

    def post(self, url, headers=None, **kw):
        return self.client.post(url, headers=self._headers(headers), **kw)


@pytest.fixture
def create_agency_client(app, gateway, client):
    counter = iter(range(1, 10_000))

    def make(services=("medicine_delivery", "umkm_pickup", "tourism_transport"),
             key_type="live", name=None, callback_url=None):
        agency, key = create_agency(gateway, name or f"Agency {next(counter)}", list(services),
                                    callback_url, actor="test", key_type=key_type)
        return AgencyClient(client, key, agency)

    return make


@pytest.fixture
def agency(create_agency_client):
    return create_agency_client()


def drain(app) -> None:
    """Work every queue empty with a real rq SimpleWorker in this process (retries included:
    the test config retries with no interval, so no scheduler is needed)."""
    from rq import Queue

    with app.app_context():
        connection = Redis.from_url(app.extensions["gateway"].redis_url)
        worker = SimpleWorker([Queue(n, connection=connection) for n in QueueNames.all()],
                              connection=connection)
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        connection.close()


def new_key(app, services=("medicine_delivery",), key_type="live", name=None) -> str:
    """Create an agency on ``app`` and return its first key."""
    gateway = app.extensions["gateway"]
    _agency, key = create_agency(gateway, name or f"Agency {os.urandom(4).hex()}",
                                 list(services), actor="test", key_type=key_type)
    return key


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def run_jobs(app):
    return lambda: drain(app)


MEDICINE_BODY = {
    "prescription_id": "RX-2026-000123",
    "pickup_location_id": "puskesmas-sobo",
    "patient": {
        "name": "Siti Aminah",
        "phone": "+6281234567890",
        "nik": "3510011203650002",
        "address": "Jl. Letjen S. Parman No. 5, Sobo, Banyuwangi",
        "location": {"lat": -8.2192, "lng": 114.3691},
    },
    "items": [{"name": "Amlodipine 10 mg", "quantity": 30}],
    "cold_chain": False,
    "pharmacist_counselled": True,
    "notes_for_courier": "Rumah pagar hijau",
}


@pytest.fixture
def medicine_body():
    import copy

    return copy.deepcopy(MEDICINE_BODY)


# -- real HTTP: the GO-SEND simulator, the gateway itself, an agency's callback receiver -------
SIM_CREDENTIALS = {"client_id": "test-engine", "pass_key": "test-pass-key",
                   "webhook_token": "test-webhook-token-0123456789"}


@pytest.fixture
def gosend_sim():
    """The GO-SEND simulator on a free port, its clock stepping every 0.2 s."""
    from gateway.couriers.gosend.simulator import GoSendSimulator, create_simulator_app
    from gateway.testing import ServerThread

    sim = GoSendSimulator(step_seconds=0.2, slow_seconds=2.0, **SIM_CREDENTIALS)
    with ServerThread(create_simulator_app(sim)) as server:
        sim.url = server.url
        sim.start_clock()
        yield sim
        sim.stop_clock()


@pytest.fixture
def callback_receiver():
    from gateway.testing import CallbackReceiver, ServerThread

    receiver = CallbackReceiver()
    with ServerThread(receiver.app()) as server:
        receiver.url = f"{server.url}/callback"
        yield receiver


@pytest.fixture
def serve_app():
    """Serve apps over real HTTP for one test, so a simulator's webhooks reach them."""
    from gateway.testing import ServerThread

    servers = []

    def serve(app, sim=None, courier=None):
        server = ServerThread(app).__enter__()
        servers.append(server)
        app.server_url = server.url
        if sim is not None:
            sim.webhook_url = f"{server.url}/webhooks/{courier}"
        return app

    yield serve
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def gosend_app(make_app, gosend_sim, serve_app):
    """An app whose medicine requests go to the GO-SEND simulator, then the own fleet, served
    over HTTP so that the simulator's webhooks reach it."""

    def make(**overrides):
        config = {
            "couriers": {"gosend_sandbox": {"base_url": gosend_sim.url, "timeout_seconds": 1,
                                            **SIM_CREDENTIALS},
                         "own_fleet": {"enabled": True}},
            "services": {"medicine_delivery": {"couriers": ["gosend_sandbox", "own_fleet"]},
                         "umkm_pickup": {"couriers": ["gosend_sandbox", "own_fleet"]}},
        }
        config.update(overrides)
        return serve_app(make_app(**config), gosend_sim, "gosend_sandbox")

    return make
