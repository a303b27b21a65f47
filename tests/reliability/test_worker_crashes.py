"""Workers killed with SIGKILL at random moments: nothing is lost, nothing is booked twice.

Real processes: two ``gateway worker`` processes share Redis and the database with the API
(served here over HTTP for the simulator's webhooks); one of them is killed every second or
so and started again, during the whole run. A kill can land anywhere, including between
"booked at the provider" and "recorded in our database". Every request must still end
delivered, and the GO-SEND simulator must show at most one booking per request. The run is
bounded: it stops by itself.
"""

from __future__ import annotations

import os
import random
import signal
import time

import requests
from sqlalchemy import select

from gateway import create_app
from gateway.agencies import create_agency
from gateway.migrate import upgrade
from gateway.models import ServiceRequest
from tests.conftest import MEDICINE_BODY, SERVICE_PLUGINS, bearer
from tests.reliability.harness import bookings_per_request, start_worker, write_config

REQUESTS = int(os.environ.get("GATEWAY_CRASH_REQUESTS", "30"))
KILL_FOR_SECONDS = 10
FINISH_WITHIN = 120


def test_killing_workers_loses_nothing_and_books_nothing_twice(
        tmp_path, gosend_sim, redis_url, redis_conn, database_url, serve_app):
    config = tmp_path / "config"
    write_config(config, gosend_sim.url)
    env = {**os.environ, "GATEWAY_CONFIG": str(config), "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": redis_url}
    app = create_app({"config_dir": str(config), "data_dir": str(tmp_path / "data"),
                      "database_url": database_url, "redis_url": redis_url},
                     plugins=SERVICE_PLUGINS)
    gateway = app.extensions["gateway"]
    upgrade(gateway.db)
    serve_app(app, gosend_sim, "gosend_sandbox")
    _agency, key = create_agency(gateway, "Crash office", ["medicine_delivery"],
                                 key_type="test", actor="test")
    client = app.test_client()
    ids = []
    for n in range(REQUESTS):
        response = client.post("/api/v1/services/medicine_delivery/requests",
                               json={**MEDICINE_BODY, "prescription_id": f"RX-CRASH-{n}"},
                               headers=bearer(key))
        assert response.status_code == 202
        ids.append(response.get_json()["id"])

    rng = random.Random(20261128)
    log = open(tmp_path / "workers.log", "wb")  # noqa: SIM115 - closed in finally
    workers = [start_worker(env, log), start_worker(env, log)]
    kills = 0
    try:
        deadline = time.monotonic() + KILL_FOR_SECONDS
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 1.5))
            victim = rng.randrange(len(workers))
            os.killpg(workers[victim].pid, signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = start_worker(env, log)

        finish = time.monotonic() + FINISH_WITHIN
        while time.monotonic() < finish:
            with gateway.db.read() as session:
                statuses = dict(session.execute(
                    select(ServiceRequest.id, ServiceRequest.status)
                    .where(ServiceRequest.id.in_(ids))).all())
            if all(s == "delivered" for s in statuses.values()):
                break
            time.sleep(1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        log.close()

    assert kills >= 5
    stuck = {i: s for i, s in statuses.items() if s != "delivered"}
    assert stuck == {}, f"{len(stuck)} request(s) did not finish: {sorted(set(stuck.values()))}"
    per_request = bookings_per_request(
        requests.get(f"{gosend_sim.url}/_sim/bookings", timeout=5).json())
    assert set(per_request) == set(ids)
    doubled = {i: n for i, n in per_request.items() if n > 1}
    assert doubled == {}, f"booked more than once: {doubled}"
