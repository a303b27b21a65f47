"""Redis lost in the middle of a load: restarted empty (no persistence), nothing is lost and
nothing is booked twice.

The database is the source of truth; Redis only carries work. Requests arrive before,
during and after the outage (intake answers 202 while Redis is down and leaves the work to
the sweep), webhooks arrive during it (stored in the inbox), and the workers ride it out.
When Redis comes back empty, the sweep re-enqueues everything the database says is owed.
Workers that die are started again, as a process manager would. The run is bounded.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.reliability.harness import OwnRedisRun, bookings_per_request

# Timing-sensitive (a timed chaos run: Redis restarted mid-load):
# scripts/test runs it alone, after the parallel run.
pytestmark = pytest.mark.serial

PER_PHASE = 10
OUTAGE_SECONDS = 4
FINISH_WITHIN = 120


def test_redis_restarted_empty_mid_load_loses_nothing_and_doubles_nothing(
        tmp_path, gateway_gosend, gateway_database_url, serve_app):
    with OwnRedisRun(tmp_path, gateway_gosend, gateway_database_url, serve_app,
                     "workers.log") as run:
        scenario, redis = run.scenario, run.redis
        run.start_worker()
        run.start_worker()
        scenario.submit("before", PER_PHASE)
        time.sleep(1.5)
        redis.stop()                               # lost, with whatever it held
        scenario.submit("during", PER_PHASE)       # stored; their jobs wait for the sweep
        time.sleep(OUTAGE_SECONDS)
        redis.start()                              # back, empty
        scenario.submit("after", PER_PHASE)
        statuses = scenario.wait_all_delivered(FINISH_WITHIN, run.restart_dead_workers)

    assert len(scenario.ids) == 3 * PER_PHASE
    stuck = {i: s for i, s in statuses.items() if s != "delivered"}
    assert stuck == {}, f"{len(stuck)} request(s) did not finish: {sorted(set(stuck.values()))}"
    per_request = bookings_per_request(
        requests.get(f"{gateway_gosend.url}/_sim/bookings", timeout=5).json())
    assert set(per_request) == set(scenario.ids)
    assert {i: n for i, n in per_request.items() if n > 1} == {}
