"""Production shape in small: two API nodes (``gateway serve``, two gunicorn workers each)
and two ``gateway worker`` processes sharing one database (PostgreSQL in CI's PostgreSQL
pass) and one Redis. Requests go to both nodes; every one is completed exactly once: one
booking at the provider, one applied ``delivered`` on its timeline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import func, select

from gateway.models import StatusEvent
from gateway.testing import free_port
from tests.conftest import MEDICINE_BODY, bearer
from tests.reliability.harness import Scenario, bookings_per_request, start_worker

# Timing-sensitive (two API nodes and two workers, finished within a bound):
# scripts/test runs it alone, after the parallel run.
pytestmark = pytest.mark.serial

REQUESTS = 40
FINISH_WITHIN = 90


def _start_node(env: dict, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2"],
        env={**env, "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def _wait_healthy(url: str, process: subprocess.Popen, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the node at {url} exited"
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the node at {url} did not start")


def test_two_api_nodes_and_two_workers_complete_every_request_exactly_once(
        tmp_path, gateway_gosend, gateway_redis_url, gateway_redis, gateway_database_url,
        serve_app):
    scenario = Scenario(tmp_path, gateway_gosend, gateway_database_url, gateway_redis_url,
                        serve_app)
    log = open(tmp_path / "processes.log", "wb")  # noqa: SIM115 - closed in finally
    processes = []
    try:
        nodes = []
        for _ in range(2):
            process, url = _start_node(scenario.env, log)
            processes.append(process)
            nodes.append(url)
        for process, url in zip(processes, nodes, strict=True):
            _wait_healthy(url, process)
        gateway_gosend.webhook_url = f"{nodes[1]}/webhooks/gosend_sandbox"
        processes += [start_worker(scenario.env, log), start_worker(scenario.env, log)]

        served = {url: 0 for url in nodes}
        for number in range(REQUESTS):
            node = nodes[number % 2]
            response = requests.post(
                f"{node}/api/v1/services/medicine_delivery/requests", timeout=10,
                json={**MEDICINE_BODY, "prescription_id": f"RX-NODE-{number}"},
                headers=bearer(scenario.key))
            assert response.status_code == 202, response.text
            scenario.ids.append(response.json()["id"])
            served[node] += 1
        statuses = scenario.wait_all_delivered(FINISH_WITHIN)
        # Either node answers for any request: they share the database.
        for request_id in scenario.ids[:4]:
            for node in nodes:
                body = requests.get(f"{node}/api/v1/requests/{request_id}", timeout=10,
                                    headers=bearer(scenario.key)).json()
                assert body["status"] == "delivered"
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()

    assert served == {nodes[0]: REQUESTS // 2, nodes[1]: REQUESTS // 2}
    stuck = {i: s for i, s in statuses.items() if s != "delivered"}
    assert stuck == {}, f"{len(stuck)} not delivered: {sorted(set(stuck.values()))}"
    per_request = bookings_per_request(
        requests.get(f"{gateway_gosend.url}/_sim/bookings", timeout=5).json())
    assert per_request == dict.fromkeys(scenario.ids, 1), "a request booked twice or never"
    with scenario.gateway.db.read() as session:
        delivered = dict(session.execute(
            select(StatusEvent.request_id, func.count()).where(
                StatusEvent.status == "delivered", StatusEvent.applied.is_(True))
            .group_by(StatusEvent.request_id)).all())
    assert delivered == dict.fromkeys(scenario.ids, 1)
    scenario.close()
