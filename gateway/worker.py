"""Running rq workers inside the gateway app, with the sweep beside them.

Callbacks to agencies are worked apart, by :class:`CallbackWorker` threads (see there).

The default is rq's ``SimpleWorker`` (jobs run in the worker process: about three times the
throughput of forking a child per job on this hardware); ``--fork`` gives rq's forking
``Worker`` for isolation. Scale by running more ``gateway worker`` processes, here or on other
machines: they share only Redis and the database.

A worker outlives a Redis restart. rq retries a lost connection only while it waits for a
job; lost anywhere else (in the middle of a job, at its heartbeat) rq's loop logs "unhandled
exception, quitting" and ends. ``run_worker`` then waits for Redis with a growing pause,
saying so once per outage, and starts the loop again in the same process; work that the
restarted (empty) Redis forgot comes back through the sweep. Only a stop signal, or the end
of a burst, ends the process.

A worker process sends its log lines, rq's included, through the gateway's format
(``gateway.logs``) and counts its jobs and provider calls in the machine's metrics directory,
where the ``/metrics`` of an API node on the same machine adds them up (``gateway.metrics``).
"""


from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import StopRequested

from .logs import configure_logging
from .metrics import use_multiprocess_dir
from .queues import LIFE_EVERY, QueueNames, oldest_job_age, say_alive, say_gone
from .rqthreads import InThread
from .sweep import run_forever

log = logging.getLogger(__name__)

REDIS_LOST = (RedisConnectionError, RedisTimeoutError)
#: first and longest pause between two attempts to reach Redis again, in seconds
RECONNECT_FIRST_PAUSE, RECONNECT_MAX_PAUSE = 0.5, 15.0


class _StopNoted:
    """Notes a stop signal, so that ``run_worker`` can tell "asked to stop" from "rq's loop
    gave up" when ``work()`` returns (rq answers both the same way)."""

    stop_signalled = False

    def request_stop(self, signum, frame):
        self.stop_signalled = True
        super().request_stop(signum, frame)


#: how often a worker whose scheduler is not running tries to take the scheduler over
SCHEDULER_TAKEOVER_SECONDS = 15.0


class _TakesOverScheduler:
    """Takes the scheduler over from a worker that died. rq runs one scheduler (moving due
    delayed jobs and retries to their queues) in the worker that holds its lock; a worker
    killed with its scheduler leaves the lock to expire a minute later, and the others only
    try to take it when they start and every ten minutes, so scheduled jobs could wait that
    long. Here a worker without a running scheduler tries every
    :data:`SCHEDULER_TAKEOVER_SECONDS` (the sweep re-enqueues owed work whose scheduled job is
    overdue meanwhile: ``gateway.queues``)."""

    _scheduler_tried_at = 0.0

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        scheduler = getattr(self, "scheduler", None)
        # (no timeout: a burst worker, whose scheduler only ran once at its start)
        if scheduler is not None and timeout is not None and \
                time.monotonic() - self._scheduler_tried_at > SCHEDULER_TAKEOVER_SECONDS:
            self._scheduler_tried_at = time.monotonic()
            # refreshes the locks this worker's scheduler holds; takes those whose holder
            # died, and starts this worker's scheduler when it is not running
            with contextlib.suppress(RedisError):
                scheduler.acquire_locks(auto_start=True)
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)


#: how long the oldest job on ``default`` may wait before it goes ahead of ``reports``, as a
#: share of ``jobs.max_queue_age_seconds`` (past which ``/readyz`` says the queues lag)
DEFAULT_PATIENCE_SHARE = 0.5


class _TakesTurns:
    """``default`` goes ahead of ``reports`` once its oldest job has waited
    :attr:`default_patience` seconds (half ``jobs.max_queue_age_seconds``: 60 s by default);
    ``dispatch`` always comes first.

    rq takes from a worker's queues in their order, so a queue is served only when those
    before it are empty. Under a steady load the report jobs never left ``reports`` empty
    (one carries on where the last stopped), and what waits on ``default`` (the citizens'
    notices, the plates and proof images to fetch) waited for minutes: 192 s for the oldest
    in the 5-minute soak. Plain turns (one job from each) went too far the other way: the
    jobs on ``default`` took half the turns and the reports fell 50 s behind; with a
    patience of 10 s ``default`` stayed late at 20 requests a second and the reports fell
    90 s behind. So after each job the worker looks at the head of ``default`` and lets it
    go first only when it has waited too long. rq calls ``reorder_queues`` after every job
    it takes and reads the order from ``_ordered_queues`` (rq 3.0; its own round-robin strategy
    does the same); ``tests/gateway/test_worker_threads.py`` fails if that changes."""

    default_patience = 60.0

    def reorder_queues(self, reference_queue):
        order = self._ordered_queues                        # rq 3.0: see the docstring
        names = [queue.name for queue in order]
        if QueueNames.REPORTS not in names or QueueNames.DEFAULT not in names:
            return
        reports, default = names.index(QueueNames.REPORTS), names.index(QueueNames.DEFAULT)
        try:
            waited = oldest_job_age(order[default], datetime.now(UTC))
        except RedisError:          # rq's own loop deals with Redis away
            return
        late = (waited or 0.0) > self.default_patience
        if late != (default < reports):
            order[reports], order[default] = order[default], order[reports]


class GatewaySimpleWorker(_StopNoted, _TakesOverScheduler, _TakesTurns, SimpleWorker):
    pass


class GatewayForkingWorker(_StopNoted, _TakesOverScheduler, _TakesTurns, Worker):
    pass


class _RedisLostFilter(logging.Filter):
    """Drops rq's "unhandled exception, quitting" (with its traceback) when the exception is
    a lost Redis: the worker does not quit, and ``run_worker`` says what happens, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, REDIS_LOST)


def worker_connection(gateway) -> Redis:
    # No socket timeout: a worker blocks on Redis for minutes waiting for work, on purpose.
    return Redis.from_url(gateway.redis_url)


def _let_go(worker) -> None:
    """What rq's teardown does not reach when Redis is gone: the thread listening for rq's
    commands (it would otherwise retry, then listen, for a worker that no longer works)."""
    if worker.pubsub_thread is not None:
        worker.pubsub_thread.stop()
        worker.pubsub_thread.join(timeout=1)
        worker.pubsub.close()


def _wait_for_redis(connection: Redis, worker: _StopNoted, pause: float) -> bool:
    """Block until Redis answers (True) or a stop signal comes (False)."""
    lost_logged = False
    while not worker.stop_signalled:
        try:
            connection.ping()
        except RedisError as exc:
            if not lost_logged:
                log.warning("Redis unreachable (%s); the worker waits for it and carries on",
                            type(exc).__name__)
                lost_logged = True
        else:
            if lost_logged:
                log.info("Redis answers again; the worker carries on")
            return True
        try:
            time.sleep(pause)
        except StopRequested:   # rq's signal handler, still installed, on a stop signal
            return False
        pause = min(pause * 2, RECONNECT_MAX_PAUSE)
    return False


class CallbackWorker(InThread, SimpleWorker):
    """An rq worker on the ``callbacks`` queue, one per thread of a ``gateway worker``.

    Callbacks call endpoints agencies control, so they never share a worker with our own
    work: each process runs several of these beside its main worker (``callbacks.workers``),
    and rq's rate limit keeps any one agency to ``callbacks.agency_concurrency`` of them, so
    a slow agency leaves the others free. It runs in a thread (``gateway.rqthreads``: no
    signal handlers, the main thread stops it, jobs timed out by a timer), its wait for work
    broken every few seconds to see whether it was asked to stop.
    """

    stop_check_seconds = 2

    def stop(self) -> None:
        """Finish the current job, if any, then leave (rq's warm shutdown, without a signal)."""
        self.ask_to_stop()

    @property
    def stop_signalled(self) -> bool:
        """Asked to stop (what :func:`_wait_for_redis` watches, as for the main worker)."""
        return self.stop_asked

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        if timeout is None:     # burst: rq does not wait at all
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self.stop_asked:
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
                while True:
                    try:
                        worker.work(burst=burst, with_scheduler=scheduler,
                                    logging_level=gateway.settings["log_level"])
                    except REDIS_LOST:
                        _let_go(worker)  # as the main worker: wait for Redis, carry on
                    if burst or worker.stop_signalled or not _wait_for_redis(
                            worker.connection, worker, RECONNECT_FIRST_PAUSE):
                        return

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


@contextlib.contextmanager
def saying_alive(connection, worker_name: str):
    """While the block runs, a thread says every :data:`gateway.queues.LIFE_EVERY` seconds
    that this worker is alive, whatever job it is in (``gateway.queues._orphaned``): killed,
    its started job is taken again within seconds, not after rq's registration expires."""
    stop = threading.Event()

    def loop():
        while True:
            with contextlib.suppress(RedisError):     # Redis lost: the worker loop says so
                say_alive(connection, worker_name)
            if stop.wait(LIFE_EVERY):
                return

    thread = threading.Thread(target=loop, name="gateway-alive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(RedisError):
            say_gone(connection, worker_name)


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
    logging.getLogger("rq.worker").addFilter(_RedisLostFilter())
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
        worker_class = GatewayForkingWorker if fork else GatewaySimpleWorker
        worked, pause = False, RECONNECT_FIRST_PAUSE
        with app.app_context():
            while True:
                worker = worker_class([Queue(n, connection=connection) for n in names],
                                      connection=connection,
                                      worker_ttl=gateway.settings["jobs"]["worker_ttl"])
                worker.default_patience = DEFAULT_PATIENCE_SHARE * gateway.settings["jobs"][
                    "max_queue_age_seconds"]
                started = time.monotonic()
                try:
                    with saying_alive(connection, worker.name):
                        worked = worker.work(burst=burst, with_scheduler=with_scheduler,
                                             logging_level=gateway.settings["log_level"]) \
                            or worked
                except REDIS_LOST:
                    _let_go(worker)  # rq's teardown stopped at the lost Redis
                if burst or worker.stop_signalled:
                    break
                # A loop that ran for a while starts again at once; one that keeps ending
                # at once (Redis answers a ping but not the worker) backs off.
                pause = RECONNECT_FIRST_PAUSE if time.monotonic() - started > 60 \
                    else min(pause * 2, RECONNECT_MAX_PAUSE)
                if not _wait_for_redis(connection, worker, pause):
                    break
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
