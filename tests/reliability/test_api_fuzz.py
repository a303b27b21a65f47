"""API fuzzing with schemathesis against the gateway's own OpenAPI document.

Every operation, with a valid key (of an agency that may use every service and the fleet
list): no 5xx, and no response that breaks the document (status codes, content types,
bodies, headers). CI runs a bounded number of examples per operation; for a longer run:

    GATEWAY_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/reliability/test_api_fuzz.py

Schemathesis's "positive data acceptance" check is left out on purpose: the services apply
rules no JSON schema can state (a pharmacist must have counselled, a departure within 30 days,
an Indonesian phone number), and their 422 answers are documented.

The app is built when this module is imported (schemathesis parametrises from a loaded
schema), on its own SQLite file and its own Redis database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway import create_app
from gateway.agencies import create_agency
from gateway.migrate import upgrade
from gateway.pytest_plugin import worker_redis_url
from gateway.redis_server import EmbeddedRedis, redis_binary
from gateway.testing import free_port
from tests.conftest import CONFIG_DIR, SERVICE_NAMES, SERVICE_PLUGINS

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "25"))


def _redis_url(data: Path) -> str:
    """A database of the suite's Redis that no fixture flushes (this xdist worker's, plus 8),
    or a private server."""
    url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if not url:
        server = EmbeddedRedis(data / "redis", port=free_port(), binary=redis_binary())
        url = server.start()
        atexit.register(server.stop)
    return worker_redis_url(url, offset=8)


def _fuzzed_app():
    data = Path(tempfile.mkdtemp(prefix="gateway-fuzz-"))
    atexit.register(shutil.rmtree, data, True)
    app = create_app({"config_dir": str(CONFIG_DIR), "data_dir": str(data),
                      "database_url": f"sqlite:///{data / 'gateway.db'}",
                      "redis_url": _redis_url(data),
                      "couriers": {"gosend_sandbox": {"enabled": False}},
                      # Fuzz the contract, not the rate limiter (tested on its own).
                      "api": {"rate_limits": {"test": {"rate": 10000.0, "burst": 100000}}}},
                     plugins=SERVICE_PLUGINS)
    gateway = app.extensions["gateway"]
    upgrade(gateway.db)
    _agency, key = create_agency(gateway, "Fuzzing office", list(SERVICE_NAMES),
                                 key_type="test", roles=["fleet_dispatch"])
    return app, {"Authorization": f"Bearer {key}"}


APP, HEADERS = _fuzzed_app()
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_documented_contract(case):
    case.call_and_validate(headers=HEADERS, excluded_checks=[positive_data_acceptance])
