"""rq workers in threads (``gateway.rqthreads``): they work jobs outside the main thread and
stop when another thread asks. These fail if an rq upgrade changes the two private names the
gateway relies on there."""

from __future__ import annotations

import threading
import time

from redis import Redis
from rq import Queue
from rq.job import JobStatus

from gateway.testing import drain
from gateway.worker import start_callback_workers, stop_callback_workers


def test_a_worker_in_a_thread_works_jobs(app):
    redis = Redis.from_url(app.extensions["gateway"].redis_url)
    job = Queue("default", connection=redis).enqueue(len, "abc")
    errors = []

    def work():
        try:
            drain(app)
        except Exception as exc:    # a signal handler installed outside the main thread
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not errors
    assert job.get_status(refresh=True) == JobStatus.FINISHED and job.return_value() == 3


def test_callback_workers_in_threads_stop_when_the_main_thread_asks(app):
    started = start_callback_workers(app, 2, with_scheduler=False)
    time.sleep(0.5)
    assert all(thread.is_alive() for _worker, thread in started)
    began = time.monotonic()
    stop_callback_workers(started, timeout=10)
    assert not any(thread.is_alive() for _worker, thread in started)
    assert time.monotonic() - began < 5     # within one wait for work (two seconds)


def test_a_job_waiting_too_long_on_default_goes_ahead_of_reports(app):
    """A ``gateway worker`` (``gateway.worker._TakesTurns``): with reports always waiting,
    a job on ``default`` (a citizen's notice, plates, proof images) that has waited longer
    than its patience is taken before them; one that has not, after them; a
    dispatch job before either. Fails if rq stops calling ``reorder_queues`` or reading
    ``_ordered_queues``."""
    from datetime import UTC, datetime, timedelta

    from gateway.queues import QueueNames
    from gateway.worker import GatewaySimpleWorker

    redis = Redis.from_url(app.extensions["gateway"].redis_url)
    queues = {name: Queue(name, connection=redis) for name in QueueNames.own_work()}
    reports = [queues["reports"].enqueue(len, "r" * n) for n in range(1, 5)]
    waited, fresh = [queues["default"].enqueue(len, "d" * n) for n in range(1, 3)]
    waited.enqueued_at = datetime.now(UTC) - timedelta(
        seconds=GatewaySimpleWorker.default_patience + 50)
    waited.save()
    dispatch = queues["dispatch"].enqueue(len, "x")
    worker = GatewaySimpleWorker([queues[n] for n in QueueNames.own_work()], connection=redis)
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")

    def ended(job):
        job.refresh()
        return job.ended_at

    order = sorted([dispatch, *reports, waited, fresh], key=ended)
    assert [job.id for job in order] == [
        dispatch.id, waited.id, *(job.id for job in reports), fresh.id]
