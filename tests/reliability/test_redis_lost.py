"""Redis lost in the middle of a load: restarted empty (no persistence), nothing is lost and
nothing is booked twice.

The database is the source of truth; Redis only carries work. Requests arrive before,
during and after the outage (intake answers 202 while Redis is down and leaves the work to
the sweep), webhooks arrive during it (stored in the inbox), and the workers ride it out.
When Redis comes back empty, the sweep re-enqueues everything the database says is owed.
Workers that die are started again, as a process manager would. The run is bounded.
"""

from __future__ import annotations

import os
import time

import requests
from sqlalchemy import select

from gateway import create_app
from gateway.agencies import create_agency
from gateway.migrate import upgrade
from gateway.models import ServiceRequest
from gateway.redis_server import EmbeddedRedis, redis_binary
from tests.conftest import MEDICINE_BODY, SERVICE_PLUGINS, bearer, free_port
from tests.reliability.harness import bookings_per_request, start_worker, write_config

PER_PHASE = 10
OUTAGE_SECONDS = 4
FINISH_WITHIN = 120


def test_redis_restarted_empty_mid_load_loses_nothing_and_doubles_nothing(
        tmp_path, gosend_sim, database_url, serve_app):
    redis = EmbeddedRedis(tmp_path / "redis", port=free_port(), binary=redis_binary())
    redis_url = redis.start()
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
    _agency, key = create_agency(gateway, "Outage office", ["medicine_delivery"],
                                 key_type="test", actor="test")
    client = app.test_client()
    ids: list[str] = []

    def submit(phase: str) -> None:
        for n in range(PER_PHASE):
            response = client.post("/api/v1/services/medicine_delivery/requests",
                                   json={**MEDICINE_BODY, "prescription_id": f"RX-{phase}-{n}"},
                                   headers=bearer(key))
            assert response.status_code == 202, response.get_json()
            ids.append(response.get_json()["id"])

    log = open(tmp_path / "workers.log", "wb")  # noqa: SIM115 - closed in finally
    workers = [start_worker(env, log), start_worker(env, log)]
    statuses: dict = {}
    try:
        submit("before")
        time.sleep(1.5)
        redis.stop()                       # lost, with whatever it held
        submit("during")                   # stored; their jobs wait for the sweep
        time.sleep(OUTAGE_SECONDS)
        redis.start()                      # back, empty
        submit("after")
        finish = time.monotonic() + FINISH_WITHIN
        while time.monotonic() < finish:
            for index, worker in enumerate(workers):
                if worker.poll() is not None:
                    workers[index] = start_worker(env, log)
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
                worker.kill()
                worker.wait()
        log.close()
        redis.stop()

    assert len(ids) == 3 * PER_PHASE
    stuck = {i: s for i, s in statuses.items() if s != "delivered"}
    assert stuck == {}, f"{len(stuck)} request(s) did not finish: {sorted(set(stuck.values()))}"
    per_request = bookings_per_request(
        requests.get(f"{gosend_sim.url}/_sim/bookings", timeout=5).json())
    assert set(per_request) == set(ids)
    assert {i: n for i, n in per_request.items() if n > 1} == {}
