"""Real processes for the reliability scenarios: a config directory that workers started as
``gateway worker`` share with the test's own app, and the workers themselves."""

from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

from tests.conftest import CONFIG_DIR, SIM_CREDENTIALS


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
                                   "timeout_seconds": 2, **SIM_CREDENTIALS},
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
