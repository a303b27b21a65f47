"""Dispatch: requests booked at the GO-SEND simulator per second per worker, against rq's own
rate for a job that does nothing, on the same Redis, with 1 and 2 workers.

Both sides use rq's SimpleWorker (no fork per job; ``gateway worker`` uses it too) started
with ``--burst`` on a queue filled beforehand. The rate is taken from the first item done to
the last, so the workers' start-up (imports, connections) is left out on both sides.

The gateway side fills its queue through the API: requests are listed for batch dispatch
(``gateway.batch``), so the queue holds batch jobs, and every booking is still one provider
call, written before and recorded after in the database.
"""

from __future__ import annotations

import time

from redis import Redis
from rq import Queue

from .load import session
from .servers import stop

JOBS = 1000


def _drain_seconds(start_workers, count_done, total: int, within: float = 300) -> float:
    """Seconds from the first item done to the last (polled every 10 ms)."""
    started = time.monotonic()
    processes = start_workers()
    first = None
    while (done := count_done()) < total and time.monotonic() - started < within:
        if first is None and done:
            first = (time.monotonic(), done)
        if all(process.poll() is not None for process in processes):
            raise RuntimeError("the workers exited before the queue was drained; see "
                               "processes.log")
        time.sleep(0.01)
    elapsed = time.monotonic() - first[0]
    for process in processes:
        stop(process)
    return elapsed * total / (total - first[1])     # the items done before ``first`` count


def _trivial_rate(setup, redis_url: str, workers: int) -> float:
    connection = Redis.from_url(redis_url)
    name = f"bench-trivial-{time.monotonic_ns()}"     # a fresh queue: its own registries
    queue = Queue(name, connection=connection)
    for n in range(JOBS):
        queue.enqueue("bench.trivial.noop", f"r{n}")
    done = queue.finished_job_registry

    def start():
        return [setup.spawn("rq.cli", "worker", "--burst", "--url", redis_url,
                            "--worker-class", "rq.worker.SimpleWorker", name)
                for _ in range(workers)]

    seconds = _drain_seconds(start, lambda: done.count, JOBS)
    connection.close()
    return JOBS / seconds / workers


def _gateway_rate(setup, node: str, sim, workers: int) -> float:
    """Fill the queue through the API with no worker running, then start the workers."""
    from plugins.medicine_delivery.service import EXAMPLE

    before = sim.booked()
    client = session()
    stamp = time.time_ns()
    for n in range(JOBS):
        response = client.post(f"{node}/api/v1/services/medicine_delivery/requests",
                               json={**EXAMPLE, "prescription_id": f"RX-D{stamp}-{n}"},
                               headers={"Authorization": f"Bearer {setup.key}"}, timeout=10)
        response.raise_for_status()

    def start():
        return [setup.spawn("gateway", "worker", "--burst", "--no-sweep")
                for _ in range(workers)]

    seconds = _drain_seconds(start, lambda: sim.booked() - before, JOBS)
    return JOBS / seconds / workers


def run(setup, node: str, sim, redis_url: str) -> list[dict]:
    rows = []
    for workers in (1, 2):
        baseline = _trivial_rate(setup, redis_url, workers)
        measured = _gateway_rate(setup, node, sim, workers)
        rows.append({
            "name": f"dispatch: booked at the simulator per s per worker ({workers} worker"
                    f"{'s' if workers > 1 else ''})",
            "value": f"{measured:.0f} /s/worker",
            "baseline": f"{baseline:.0f} trivial jobs/s/worker",
            "ratio": measured / baseline, "target": "≥ 1.0×",
            "met": measured / baseline >= 1.0, "notes": f"{JOBS} requests"})
    return rows
