"""Running rq workers inside the gateway app, with the sweep beside them.

Callbacks to agencies are worked apart, by :class:`CallbackWorker` threads (see there).

The default is rq's ``SimpleWorker`` (jobs run in the worker process: about three times the
throughput of forking a child per job on this hardware); ``--fork`` gives rq's forking
``Worker`` for isolation. Scale by running more ``gateway worker`` processes, here or on other
machines: they share only Redis and the database.

A worker process sends its log lines, rq's included, through the gateway's format
(``gateway.logs``) and counts its jobs and provider calls in the machine's metrics directory,
where the ``/metrics`` of an API node on the same machine adds them up (``gateway.metrics``).
"""

from __future__ import annotations

import signal
import threading
import time

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.timeouts import TimerDeathPenalty

from .logs import configure_logging
from .metrics import use_multiprocess_dir
from .queues import QueueNames
from .sweep import run_forever


def worker_connection(gateway) -> Redis:
    # No socket timeout: a worker blocks on Redis for minutes waiting for work, on purpose.
    return Redis.from_url(gateway.redis_url)


class CallbackWorker(SimpleWorker):
    """An rq worker on the ``callbacks`` queue, one per thread of a ``gateway worker``.

    Callbacks call endpoints agencies control, so they never share a worker with our own
    work: each process runs several of these beside its main worker (``callbacks.workers``),
    and rq's rate limit keeps any one agency to ``callbacks.agency_concurrency`` of them, so
    a slow agency leaves the others free. It runs in a thread: no signal handlers (the main
    thread stops it), jobs timed out by a timer instead of SIGALRM, and its wait for work
    broken every few seconds to see whether it was asked to stop.
    """

    death_penalty_class = TimerDeathPenalty
    stop_check_seconds = 2

    def _install_signal_handlers(self):
        pass

    def stop(self) -> None:
        """Finish the current job, if any, then leave (rq's warm shutdown, without a signal)."""
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        if timeout is None:     # burst: rq does not wait at all
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self._stop_requested:
            result = super().dequeue_job_and_maintain_ttl(
                min(timeout, self.stop_check_seconds), max_idle_time=self.stop_check_seconds)
            if result is not None:
                return result
        return None


def start_callback_workers(app, count: int, *, burst: bool = False,
                           with_scheduler: bool = True) -> list[tuple[CallbackWorker,
                                                                      threading.Thread]]:
    """Start ``count`` callback workers, each in a thread with its own Redis connection; the
    first runs rq's scheduler for the callbacks queue (retries come back through it)."""
    gateway = app.extensions["gateway"]
    started = []
    for index in range(count):
        connection = worker_connection(gateway)
        worker = CallbackWorker([Queue(QueueNames.CALLBACKS, connection=connection)],
                                connection=connection,
                                worker_ttl=gateway.settings["jobs"]["worker_ttl"])

        def work(worker=worker, scheduler=with_scheduler and index == 0):
            with app.app_context():
                worker.work(burst=burst, with_scheduler=scheduler,
                            logging_level=gateway.settings["log_level"])

        thread = threading.Thread(target=work, name=f"gateway-callbacks-{index + 1}",
                                  daemon=True)
        thread.start()
        started.append((worker, thread))
    return started


def stop_callback_workers(started, timeout: float) -> None:
    for worker, _thread in started:
        worker.stop()
    deadline = time.monotonic() + timeout
    for _worker, thread in started:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def run_worker(app, *, burst: bool = False, fork: bool = False, sweep: bool = True,
               queues: list[str] | None = None, with_scheduler: bool = True,
               callback_workers: int | None = None) -> bool:
    """Work the queues until stopped (or, with ``burst``, until they are empty).

    Without ``queues``: our own work (dispatch, default) in this thread, and
    ``callback_workers`` (default ``callbacks.workers``) callback workers in threads beside
    it. ``queues=["callbacks"]``: the callback workers only. The callbacks queue is never
    worked by the same rq worker as another queue.

    :raises ValueError: the callbacks queue listed with others
    """
    gateway = app.extensions["gateway"]
    names = list(queues or QueueNames.own_work())
    if QueueNames.CALLBACKS in names and len(names) > 1:
        raise ValueError("the callbacks queue runs in workers of its own: list it alone")
    callbacks_only = names == [QueueNames.CALLBACKS]
    if callback_workers is None:
        callback_workers = gateway.settings["callbacks"]["workers"]
    if callbacks_only or queues is None:
        callback_workers = max(callback_workers, 1 if callbacks_only else 0)
    else:
        callback_workers = 0
    configure_logging(gateway.settings, process=True)
    use_multiprocess_dir(gateway.settings["data_dir"])
    stop = threading.Event()
    if sweep and not burst:
        threading.Thread(target=run_forever, args=(app, stop), name="gateway-sweep",
                         daemon=True).start()
    callbacks = start_callback_workers(app, callback_workers, burst=burst,
                                       with_scheduler=with_scheduler)
    grace = gateway.settings["callbacks"]["connect_timeout_seconds"] + \
        gateway.settings["callbacks"]["timeout_seconds"] + 5
    try:
        if callbacks_only:
            return _wait_for_callback_workers(callbacks, stop, burst)
        connection = worker_connection(gateway)
        worker_class = Worker if fork else SimpleWorker
        with app.app_context():
            worker = worker_class([Queue(n, connection=connection) for n in names],
                                  connection=connection,
                                  worker_ttl=gateway.settings["jobs"]["worker_ttl"])
            worked = worker.work(burst=burst, with_scheduler=with_scheduler,
                                 logging_level=gateway.settings["log_level"])
        if burst:   # let the callbacks drain too
            for _worker, thread in callbacks:
                thread.join()
        return worked
    finally:
        stop.set()
        stop_callback_workers(callbacks, timeout=grace)


def _wait_for_callback_workers(callbacks, stop: threading.Event, burst: bool) -> bool:
    """The main thread of a callbacks-only worker: wait for SIGTERM/SIGINT (or, in burst,
    for the threads to finish)."""
    if not burst:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: stop.set())
    while not stop.is_set() and any(thread.is_alive() for _worker, thread in callbacks):
        stop.wait(0.5)
    return True
