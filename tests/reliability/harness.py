"""Real processes for the reliability scenarios: a config directory that workers started as
``gateway worker`` share with the test's own app, and the workers themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import yaml

from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.redis_server import EmbeddedRedis, redis_binary
from gateway.testing import free_port
from tests.conftest import CONFIG_DIR


def write_config(target, sim_url: str) -> None:
    """The shipped config with fast housekeeping and medicine going to the simulator only."""
    shutil.copytree(CONFIG_DIR, target)
    (target / "gateway.yaml").write_text(yaml.safe_dump({
        "jobs": {"intervals": [1, 2, 4, 8], "job_timeout": 20, "worker_ttl": 20},
        "sweep": {"interval_seconds": 1, "stale_after_seconds": 2},
        "dispatch": {"poll_after_seconds": 5},
        "api": {"rate_limits": {"test": {"rate": 1000.0, "burst": 1000}}},
        "demo": {"enabled": False}}))
    couriers = {"gosend_sandbox": {"adapter": "gosend", "sandbox": True, "base_url": sim_url,
                                   "timeout_seconds": 2, **GOSEND_TEST_CREDENTIALS},
                "own_fleet": {"enabled": False}}
    (target / "couriers.yaml").write_text(yaml.safe_dump(couriers))
    services = yaml.safe_load((target / "services.yaml").read_text())
    services["medicine_delivery"]["couriers"] = ["gosend_sandbox"]
    (target / "services.yaml").write_text(yaml.safe_dump(services))


def start_worker(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def bookings_per_request(bookings: list[dict]) -> dict[str, int]:
    """How many GO-SEND bookings each request made (our reference is ``<request id>-<n>``)."""
    counts: dict[str, int] = {}
    for booking in bookings:
        request_id = booking["storeOrderId"].rsplit("-", 1)[0]
        counts[request_id] = counts.get(request_id, 0) + 1
    return counts


class Scenario:
    """The test's own app (served for webhooks) and the environment of its worker processes,
    sharing one config directory, database, data directory (the same data key) and Redis."""

    def __init__(self, tmp_path, sim, database_url: str, redis_url: str, serve_app):
        from gateway import create_app
        from gateway.agencies import create_agency
        from gateway.migrate import upgrade
        from tests.conftest import SERVICE_PLUGINS

        config, data = tmp_path / "config", tmp_path / "data"
        write_config(config, sim.url)
        self.env = {**os.environ, "GATEWAY_CONFIG": str(config), "GATEWAY_DATA_DIR": str(data),
                    "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": redis_url}
        self.app = create_app({"config_dir": str(config), "data_dir": str(data),
                               "database_url": database_url, "redis_url": redis_url},
                              plugins=SERVICE_PLUGINS)
        self.gateway = self.app.extensions["gateway"]
        upgrade(self.gateway.db)
        serve_app(self.app, sim, "gosend_sandbox")
        _agency, self.key = create_agency(self.gateway, "Scenario office",
                                          ["medicine_delivery"], key_type="test", actor="test")
        self.ids: list[str] = []

    def close(self) -> None:
        self.gateway.db.dispose()

    def submit(self, label: str, count: int) -> None:
        from tests.conftest import MEDICINE_BODY, bearer

        client = self.app.test_client()
        for n in range(count):
            response = client.post("/api/v1/services/medicine_delivery/requests",
                                   json={**MEDICINE_BODY, "prescription_id": f"RX-{label}-{n}"},
                                   headers=bearer(self.key))
            assert response.status_code == 202, response.get_json()
            self.ids.append(response.get_json()["id"])

    def statuses(self) -> dict[str, str]:
        from sqlalchemy import select

        from gateway.models import ServiceRequest

        with self.gateway.db.read() as session:
            return dict(session.execute(select(ServiceRequest.id, ServiceRequest.status)
                                        .where(ServiceRequest.id.in_(self.ids))).all())

    def wait_all_delivered(self, within: float, every_second=None) -> dict[str, str]:
        """Poll until every request is delivered or ``within`` seconds pass; return the
        statuses last seen. ``every_second`` runs between polls (to restart workers)."""
        deadline = time.monotonic() + within
        statuses = self.statuses()
        while time.monotonic() < deadline and \
                not all(s == "delivered" for s in statuses.values()):
            if every_second:
                every_second()
            time.sleep(1)
            statuses = self.statuses()
        return statuses


class OwnRedisRun:
    """A :class:`Scenario` on a redis-server of its own (no persistence, a fixed port), so a
    test can ``redis.stop()`` it and ``redis.start()`` it again, empty, where the workers look
    for it; and the worker processes of the run, logging to one file. Leaving the ``with``
    kills the workers still running and stops Redis."""

    def __init__(self, tmp_path, sim, database_url: str, serve_app, log_name: str):
        self.redis = EmbeddedRedis(tmp_path / "redis", port=free_port(), binary=redis_binary())
        self.scenario = Scenario(tmp_path, sim, database_url, self.redis.start(), serve_app)
        self.log_path = tmp_path / log_name
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.workers: list[subprocess.Popen] = []

    def start_worker(self) -> subprocess.Popen:
        self.workers.append(start_worker(self.scenario.env, self._log))
        return self.workers[-1]

    def restart_dead_workers(self) -> None:
        """Start again every worker that exited, as a process manager would."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.workers[index] = start_worker(self.scenario.env, self._log)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        self._log.close()
        self.scenario.close()
        self.redis.stop()

    def __enter__(self) -> OwnRedisRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
