"""The suite's own fixtures, on top of the ones plugin authors get (gateway/pytest_plugin.py).

Redis, the database, the GO-SEND simulator, agencies, the worker and the console come from
the shipped plugin, so our tests use exactly what a plugin's tests get:

* Redis: ``gateway_redis_url`` / ``gateway_redis`` (``GATEWAY_TEST_REDIS_URL`` when set,
  otherwise a private redis-server; one database per xdist worker, flushed around each test).
* Database: ``gateway_database_url``, a fresh SQLite file per test; with
  ``GATEWAY_TEST_DATABASE_URL`` a PostgreSQL database per xdist worker, its schema dropped and
  migrated again per test. Tests that use it are marked ``database``: the PostgreSQL pass of
  scripts/test runs only those.

What is ours: apps on the repository's ``config/`` with every courier off unless a test turns
it on (``make_app``), the plugin's ``gateway_app`` pointed at that app, agencies with live
keys, request bodies, and apps served over HTTP for the simulators' webhooks.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

import plugins.medicine_delivery
import plugins.tourism_transport
import plugins.umkm_pickup
from gateway import create_app
from gateway.agencies import create_agency
from gateway.cli import main as cli_main
from gateway.pytest_plugin import (
    GOSEND_TEST_CREDENTIALS,
    TEST_PASSWORD_HASH,
    migrate_test_database,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
SERVICE_PLUGINS = [plugins.medicine_delivery, plugins.umkm_pickup, plugins.tourism_transport]
SERVICE_NAMES = ("medicine_delivery", "umkm_pickup", "tourism_transport")


def pytest_configure(config):
    config.addinivalue_line("markers", "plugin_kit: installs plugins into a fresh virtual "
                                       "environment with pip (under a minute; -m plugin_kit)")
    config.addinivalue_line("markers", "database: uses the test database (set by the suite on "
                                       "every test that asks for gateway_database_url); "
                                       "the PostgreSQL pass of scripts/test runs only these")
    config.addinivalue_line("markers", "serial: measures time or runs many processes; "
                                       "scripts/test runs these alone, after the parallel run")
    _test_database_from_the_environment()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gateway_database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)
    # The longest tests first (pip into fresh virtualenvs, minutes each): under xdist's
    # --dist loadgroup they go to different workers at the start instead of ending the run.
    items.sort(key=lambda item: item.get_closest_marker("plugin_kit") is None)


def postgres_test_url() -> str | None:
    """The PostgreSQL server the tests may wipe (``$GATEWAY_TEST_DATABASE_URL``), if any."""
    return os.environ.get("GATEWAY_TEST_DATABASE_URL")


def _test_database_from_the_environment() -> None:
    """``GATEWAY_DATABASE_URL`` stands for ``GATEWAY_TEST_DATABASE_URL`` when that is unset,
    but only when its database name says ``test``: the tests drop its schema, and that
    variable may well point at real data."""
    url = os.environ.get("GATEWAY_DATABASE_URL")
    if not url or os.environ.get("GATEWAY_TEST_DATABASE_URL"):
        return
    if "test" not in (make_url(url).database or ""):
        pytest.exit("GATEWAY_DATABASE_URL names a database without 'test' in its name; "
                    "the tests would wipe it. Use GATEWAY_TEST_DATABASE_URL or a test "
                    "database.", returncode=4)
    os.environ["GATEWAY_TEST_DATABASE_URL"] = url


@pytest.fixture
def make_app(tmp_path, gateway_database_url, gateway_redis_url, gateway_redis):
    """Build an app on the repo's config, with overrides and explicit plugins."""
    built = []

    def make(plugins=None, **overrides):
        config = {"config_dir": str(CONFIG_DIR), "data_dir": str(tmp_path / "data"),
                  "database_url": gateway_database_url, "redis_url": gateway_redis_url,
                  "jobs": {"intervals": [0, 0], "job_timeout": 30},
                  # Cheap password hashing (sandbox only; mode live keeps the default).
                  **({} if overrides.get("mode") == "live"
                     else {"console": {"password_hash": TEST_PASSWORD_HASH}}),
                  # No courier unless a test asks for one; routing then tries them by name.
                  "couriers": {"gosend_sandbox": {"enabled": False},
                               "own_fleet": {"enabled": False},
                               "goride_sandbox": {"enabled": False},
                               "grab_sandbox": {"enabled": False},
                               "lalamove_sandbox": {"enabled": False},
                               "shuttle": {"enabled": False}},
                  # No notifier unless a test asks for one (no notices are made then).
                  "notifiers": {"whatsapp_sandbox": {"enabled": False},
                                "sms_sandbox": {"enabled": False}},
                  "services": {name: {"couriers": []} for name in SERVICE_NAMES}}
        config.update(overrides)
        app = create_app(config, plugins=SERVICE_PLUGINS if plugins is None else plugins)
        app.testing = True
        migrate_test_database(app.extensions["gateway"].db)
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


@pytest.fixture
def cli_env(tmp_path, monkeypatch, gateway_database_url, gateway_redis_url, gateway_redis):
    """The environment an operator runs ``gateway`` commands in: a copy of the repository's
    ``config/`` (returned), the data folder beside it (``tmp_path / "data"``), the test
    database and Redis."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", gateway_database_url)
    monkeypatch.setenv("GATEWAY_REDIS_URL", gateway_redis_url)
    return config


def run_cli(*args) -> tuple[int, str]:
    """Run a ``gateway`` command in this process: :return: its exit code and its output."""
    result = CliRunner().invoke(cli_main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def gateway_app(app):
    """The shipped plugin's fixtures (``gateway_make_agency``, ``gateway_worker``,
    ``gateway_console``) work on :func:`app`, built on the repository's config."""
    return app


@pytest.fixture
def agency(gateway_make_agency):
    """An agency allowed every service, with a live key (the plugin's default is a test key,
    which routes to sandbox couriers)."""
    return gateway_make_agency(key_type="live")


def new_key(app, services=("medicine_delivery",), key_type="live", name=None) -> str:
    """Create an agency on ``app`` and return its first key."""
    gateway = app.extensions["gateway"]
    _agency, key = create_agency(gateway, name or f"Agency {os.urandom(4).hex()}",
                                 list(services), actor="test", key_type=key_type)
    return key


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


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


# -- real HTTP: an agency's callback receiver, the gateway itself --------------------------
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
def gosend_app(make_app, gateway_gosend, serve_app):
    """An app whose medicine requests go to the GO-SEND simulator, then the own fleet, served
    over HTTP so that the simulator's webhooks reach it."""

    def make(**overrides):
        config = {
            "couriers": {"gosend_sandbox": {"base_url": gateway_gosend.url, "timeout_seconds": 1,
                                            **GOSEND_TEST_CREDENTIALS},
                         "own_fleet": {"enabled": True}},
            "services": {"medicine_delivery": {"couriers": ["gosend_sandbox", "own_fleet"]},
                         "umkm_pickup": {"couriers": ["gosend_sandbox", "own_fleet"]}},
        }
        config.update(overrides)
        return serve_app(make_app(**config), gateway_gosend, "gosend_sandbox")

    return make
