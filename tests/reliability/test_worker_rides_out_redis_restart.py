"""A worker outlives a Redis restart: the same process reconnects and takes the next job.

Redis goes away while the worker is in the middle of a job (a provider that answers slowly
keeps it there), which is when rq itself gives up ("unhandled exception, quitting"). Only
one worker, never restarted by the test (unlike ``test_redis_lost``, which plays the
process manager): what an operator sees after restarting Redis on a host where nobody
watches the workers. Redis is a real ``redis-server``, stopped and started again, empty, on
the same port.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.reliability.harness import OwnRedisRun

# Timing-sensitive (a worker outlives a Redis restart within a bound):
# scripts/test runs it alone, after the parallel run.
pytestmark = pytest.mark.serial

OUTAGE_SECONDS = 3
SURVIVE_SECONDS = 8
DELIVERED_WITHIN = 60
SLOW_ANSWER_SECONDS = 1.5


def test_the_same_worker_takes_a_job_enqueued_after_redis_restarts(
        tmp_path, gateway_gosend, gateway_database_url, serve_app):
    with OwnRedisRun(tmp_path, gateway_gosend, gateway_database_url, serve_app,
                     "worker.log") as run:
        scenario, redis = run.scenario, run.redis
        worker = run.start_worker()
        scenario.submit("before", 1)
        assert scenario.wait_all_delivered(DELIVERED_WITHIN) == {
            scenario.ids[0]: "delivered"}, run.log_tail()

        # The next booking answers slowly; Redis stops while the worker waits for it.
        gateway_gosend.slow_seconds = SLOW_ANSWER_SECONDS
        requests.post(f"{gateway_gosend.url}/_sim/faults", json={"create": ["timeout"]}, timeout=5)
        calls = len(gateway_gosend.requests)
        scenario.submit("during", 1)
        deadline = time.monotonic() + DELIVERED_WITHIN
        while len(gateway_gosend.requests) == calls and time.monotonic() < deadline:
            time.sleep(0.05)
        redis.stop()
        time.sleep(OUTAGE_SECONDS)
        redis.start()                     # back on the same port, empty
        time.sleep(SURVIVE_SECONDS)       # long enough for a worker that gives up to exit
        assert worker.poll() is None, (
            f"the worker exited with status {worker.returncode} when Redis restarted:\n"
            + run.log_tail())

        scenario.submit("after", 1)       # its job goes to the new, empty Redis
        statuses = scenario.wait_all_delivered(DELIVERED_WITHIN)
        # "during" comes back through the sweep of the same worker, "after" from the queue.
        assert set(statuses.values()) == {"delivered"}, (statuses, run.log_tail())
        assert worker.poll() is None

    output = run.log_path.read_text(errors="replace")
    # Said once when the connection is lost (not once per retry), and no word of quitting.
    assert output.count("Redis unreachable") == 1, output[-3000:]
    assert "quitting" not in output, output[-3000:]
