"""Job queues on Redis (rq): what is enqueued, under which id, with which retries.

Jobs carry ids only, never personal data (rq pickles arguments into Redis). Each job
has a deterministic id (``<kind>-<request id>``), so enqueueing is idempotent: while a job for
a request is queued or running, enqueueing it again does nothing. That is what lets the sweep
re-enqueue everything the database says is owed, as often as it likes, without doubling work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from redis.lock import Lock
from rq import Queue, RateLimit, Retry, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from .db import gathered_after_commit


class QueueNames:
    """``dispatch``, ``reports``, ``default`` and ``polls`` carry our own work (bookings,
    provider reports, notices, polls);
    ``callbacks`` carries calls to endpoints agencies control, and only callback workers
    (``gateway.worker``) take from it: a slow agency can then hold up nothing but its own
    callbacks, never a provider report nor another agency."""

    DISPATCH = "dispatch"
    #: provider report batches (``gateway.tracking``): taken before the per-item jobs of
    #: ``default``, so a burst of notices or polls never holds up the statuses they follow
    REPORTS = "reports"
    DEFAULT = "default"
    #: polls of bookings whose reports are late (``gateway.tracking``): taken after
    #: ``default``, so citizens' notices and reports' own jobs never wait behind them
    POLLS = "polls"
    CALLBACKS = "callbacks"
    #: spreadsheet uploads' long jobs (``gateway.uploads``), taken last: a worker starts one
    #: only when no booking, report or poll is waiting
    UPLOADS = "uploads"

    @classmethod
    def all(cls) -> list[str]:
        return [cls.DISPATCH, cls.REPORTS, cls.DEFAULT, cls.POLLS, cls.UPLOADS, cls.CALLBACKS]

    @classmethod
    def own_work(cls) -> list[str]:
        """What a ``gateway worker`` takes in its main loop, in this order of priority
        (callbacks have threads apart)."""
        return [cls.DISPATCH, cls.REPORTS, cls.DEFAULT, cls.POLLS, cls.UPLOADS]


# job kind -> (queue, dotted path of the job function, its retry intervals: a settings key or
# the seconds themselves)
JOBS = {
    "dispatch": (QueueNames.DISPATCH, "gateway.jobs.dispatch_request", "jobs"),
    "cancel": (QueueNames.DEFAULT, "gateway.jobs.cancel_request", "jobs"),
    "poll": (QueueNames.POLLS, "gateway.jobs.poll_request", "jobs"),
    # A report that overtook its create answer is matched a second or two later: retry soon.
    "event": (QueueNames.DEFAULT, "gateway.jobs.apply_event", (1, 2, 5, 15, 60, 300)),
    # proof images, fetched while their links work (Grab signs them for about two hours)
    "proof": (QueueNames.DEFAULT, "gateway.jobs.fetch_proof_images", (5, 15, 60, 300, 900)),
    "callback": (QueueNames.CALLBACKS, "gateway.jobs.deliver_callback", "callbacks"),
    # citizen notices (gateway.notices): a send, and a later look (quiet hours' end, the
    # agency's rate, the fallback deadline) that queues the send again
    "notice": (QueueNames.DEFAULT, "gateway.jobs.send_notice", "jobs"),
    "notice_later": (QueueNames.DEFAULT, "gateway.jobs.wake_notice", ()),
    # an agency's notices over its rate: one job hands out its tokens (gateway.notices)
    "notice_turns": (QueueNames.DEFAULT, "gateway.jobs.give_notice_turns", "jobs"),
    "notice_turns_later": (QueueNames.DEFAULT, "gateway.jobs.wake_notice_turns", ()),
    # a dispatch waiting for a courier's circuit to half-open: a job apart, which queues the
    # dispatch job again then (that job cannot queue itself while it runs)
    "dispatch_later": (QueueNames.DISPATCH, "gateway.jobs.wake_dispatch", ()),
    # a spreadsheet upload (gateway.uploads): check every row, then make the valid ones
    "upload_preview": (QueueNames.UPLOADS, "gateway.jobs.preview_upload", "jobs"),
    "upload_create": (QueueNames.UPLOADS, "gateway.jobs.create_upload", "jobs"),
}

#: a whole upload's rows in one job: 10,000 rows through intake take minutes, not seconds
UPLOAD_JOB_TIMEOUT = 3600

#: what runs a plugin's job kind (``JobKind``): it finds the kind on the worker's gateway
REGISTERED_JOB = "gateway.jobs.run_registered"


@dataclass(frozen=True)
class JobKind:
    """Work a plugin owes requests (the ``register_jobs`` hook).

    :ivar name: the kind, as ``pending_job`` names it (``[a-z][a-z0-9_]{1,62}``, at most 32
        characters)
    :ivar run: ``run(gateway, request_id) -> outcome``; raise to have it retried
    :ivar retry_intervals: seconds before each retry, or ``(gateway) -> seconds`` to read
        them from the plugin's settings when the job is queued
    :ivar queue: the rq queue it goes on (never ``callbacks``: those are agencies')
    """

    name: str
    run: Callable[..., str]
    retry_intervals: Sequence[float] | Callable[..., Sequence[float]] = ()
    queue: str = QueueNames.DEFAULT


def job_spec(gateway, kind: str) -> tuple[str, str, list[float], tuple]:
    """``(queue, job function, retry intervals, leading arguments)`` of a job kind: the
    core's own (``JOBS``) or a plugin's (``gateway.job_kinds``).

    :raises KeyError: no such kind (its plugin was removed, say)
    """
    if kind in JOBS:
        queue_name, func, retry_key = JOBS[kind]
        intervals = list(retry_key) if isinstance(retry_key, tuple) else \
            gateway.settings[retry_key]["intervals"]
        return queue_name, func, intervals, ()
    registered = gateway.job_kinds[kind]
    intervals = registered.retry_intervals
    if callable(intervals):
        intervals = intervals(gateway)
    return registered.queue, REGISTERED_JOB, [float(i) for i in intervals], (kind,)


#: a job that is waiting for its agency's turn (``rate_limit``) is live too
LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED,
               JobStatus.RATE_LIMITED}
FAILURE_TTL = 30 * 24 * 3600
#: how long rq keeps a finished job of one item: its outcome is logged, counted and (a
#: request's own work) audited, so Redis need not hold it; at an hour, a steady load kept an
#: hour of finished jobs in Redis's memory
RESULT_TTL = 120


def job_id(kind: str, target_id) -> str:
    return f"{kind}-{target_id}"


#: compare and delete: a dead holder's lock is broken only if it is still that holder's
_BREAK_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) " \
              "end return 0"


class RequestLock(Lock):
    """A request's work lock that names the worker holding it, so that a worker that died
    holding it does not keep the request waiting for the lock's whole timeout
    (``jobs.job_timeout`` + 10 s): when the lock is taken and its holder is a worker that
    stopped saying it is alive (:func:`say_alive`), the lock is broken and taken. A holder
    that never said it is alive (a test's in-process drain, a console thread) is waited out
    as before."""

    def acquire(self, *args, token=None, **kwargs) -> bool:
        job = get_current_job()
        token = token or f"{(job.worker_name if job else None) or '-'}|{uuid.uuid4().hex}"
        if super().acquire(*args, token=token, **kwargs):
            return True
        holder = self.redis.get(self.name)
        if holder is None:
            return False
        text = holder.decode() if isinstance(holder, bytes) else holder
        name = text.split("|", 1)[0]
        if name == "-" or not worker_stopped_saying_alive(self.redis, name):
            return False
        if not self.redis.eval(_BREAK_LOCK, 1, self.name, holder):
            return False
        return super().acquire(blocking=False, token=token)


def request_lock(gateway, kind: str, request_id: str) -> RequestLock:
    """The Redis lock under which one request's ``kind`` work runs, whichever job runs it
    (its own job, or a batch: ``gateway.batch``)."""
    return gateway.redis.lock(f"gateway:job-lock:{kind}:{request_id}",
                              timeout=gateway.settings["jobs"]["job_timeout"] + 10,
                              lock_class=RequestLock)


#: a scheduled job (a delay, a retry's wait) this long past its time has no scheduler to move
#: it: rq's moves due jobs every second, and a killed worker's scheduler keeps its lock a
#: minute, while the other workers only try to take it when they start and every ten minutes
SCHEDULER_GRACE = timedelta(seconds=10)


#: a ``gateway worker`` process says it is alive every :data:`LIFE_EVERY` seconds, for
#: :data:`LIFE_SECONDS`: rq's own registration of a worker busy with a job lasts the job's
#: monitoring interval plus a minute (80 s here), so a killed worker's job waited that long
#: before anyone took it again
LIFE_SECONDS, LIFE_EVERY = 10, 2
#: how long the mark that a worker says it is alive stays (a worker without it, such as the
#: tests' in-process drains, is judged by rq's registration alone)
_WATCHED_SECONDS = 24 * 3600


def _life_keys(worker_name: str) -> tuple[str, str]:
    return f"gateway:worker-alive:{worker_name}", f"gateway:worker-watched:{worker_name}"


def say_alive(connection, worker_name: str) -> None:
    """One proof of life of the worker ``worker_name`` (its process's thread calls this)."""
    alive, watched = _life_keys(worker_name)
    with connection.pipeline(transaction=False) as pipe:
        pipe.set(alive, "1", ex=LIFE_SECONDS).set(watched, "1", ex=_WATCHED_SECONDS).execute()


def say_gone(connection, worker_name: str) -> None:
    """The worker stopped cleanly: nothing of it to watch."""
    connection.delete(*_life_keys(worker_name))


def worker_stopped_saying_alive(connection, worker_name: str) -> bool:
    """Whether ``worker_name`` is a worker that said it is alive (:func:`say_alive`) and
    stopped saying so (killed, frozen): what it holds is nobody's any more."""
    alive, watched = _life_keys(worker_name)
    with connection.pipeline(transaction=False) as pipe:
        said_alive, watched_over = pipe.exists(alive).exists(watched).execute()
    return bool(watched_over) and not said_alive


def _worker_gone(job: Job) -> bool:
    """Has the worker that started ``job`` died? Its rq registration expired, or, for a
    worker that says it is alive (:func:`say_alive`), it stopped saying so."""
    return not job.connection.exists(Worker.redis_worker_namespace_prefix + job.worker_name) \
        or worker_stopped_saying_alive(job.connection, job.worker_name)


def _orphaned(job: Job) -> bool:
    """Is this "live" job in fact lost, so that it will never run or finish?

    * started by a worker that no longer exists (killed: it stopped saying it is alive, or
      its registration key expired with its heartbeat);
    * queued but in no queue: taken off the queue by a worker killed before it marked the
      job started (rq parks it in an intermediate list that only its periodic maintenance,
      every ten minutes, puts back);
    * scheduled, and past its time by more than :data:`SCHEDULER_GRACE` (or in no schedule):
      no scheduler is running to move it to its queue (the one that was died with its
      worker, and no other has taken over yet).

    Re-enqueueing such a job is safe: jobs run alone (``gateway.jobs``) and are idempotent.
    """
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        return bool(job.worker_name) and _worker_gone(job)
    if status == JobStatus.QUEUED:
        return Queue(job.origin, connection=job.connection).get_job_position(job) is None
    if status == JobStatus.SCHEDULED:
        due = job.connection.zscore(ScheduledJobRegistry(job.origin, connection=job.connection)
                                    .key, job.id)
        return due is None or \
            due < (datetime.now(UTC) - SCHEDULER_GRACE).timestamp()
    return False


def callback_limit(gateway, agency_id: str) -> RateLimit:
    """The cap on one agency's callbacks queued or being delivered at once (rq's rate limit:
    the rest wait in its registry, outside the queue, and take no worker)."""
    return RateLimit(f"gateway:callbacks:agency:{agency_id}",
                     gateway.settings["callbacks"]["agency_concurrency"])


def job_timeout(gateway, kind: str) -> int:
    """A callback's job ends soon after its HTTP timeouts: the hard bound on one attempt,
    even against an endpoint that answers a byte at a time."""
    if kind == "callback":
        callbacks = gateway.settings["callbacks"]
        return int(callbacks["connect_timeout_seconds"] + callbacks["timeout_seconds"]) + 5
    if kind.startswith("upload_"):
        return max(UPLOAD_JOB_TIMEOUT, gateway.settings["jobs"]["job_timeout"])
    return gateway.settings["jobs"]["job_timeout"]


def enqueue_job(gateway, kind: str, target_id, delay: float = 0,
                rate_limit: RateLimit | None = None) -> bool:
    """Enqueue the ``kind`` job of a target (a request, an event, a callback) unless one is
    already queued or running; with ``delay``, to run that many seconds from now (rq's
    scheduler, which ``gateway worker`` runs, moves it to its queue then).

    :param rate_limit: the group the job shares a cap with (a callback: its agency's,
        :func:`callback_limit`)

    :return: True when a job was enqueued
    :raises redis.exceptions.RedisError: when Redis is unreachable (the database still holds
        the work; the sweep will enqueue it later)
    """
    queue_name, func, intervals, leading = job_spec(gateway, kind)
    connection = gateway.redis
    jid = job_id(kind, target_id)
    try:
        existing = Job.fetch(jid, connection=connection)
    except NoSuchJobError:
        existing = None
    if existing is not None:
        if existing.get_status(refresh=False) in LIVE_STATES and not _orphaned(existing):
            return False
        try:
            existing.delete()
        except (ValueError, RedisError):
            # rq cannot unregister a job whose execution record expired with a killed worker;
            # dropping its hash is enough for a fresh job to take the id.
            connection.delete(existing.key)
    queue = Queue(queue_name, connection=connection)
    options = {"job_id": jid, "job_timeout": job_timeout(gateway, kind),
               "retry": Retry(max=len(intervals), interval=intervals) if intervals else None,
               "result_ttl": RESULT_TTL, "failure_ttl": FAILURE_TTL}
    if rate_limit is not None:
        options["rate_limit"] = rate_limit
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), func, *leading, target_id, **options)
    else:
        queue.enqueue(func, *leading, target_id, **options)
    return True


def enqueue_after_commit(gateway, session, kind: str, target_id,
                         rate_limit: RateLimit | None = None, *, new: bool = False) -> None:
    """Enqueue once ``session`` has committed, so a job never runs before its data exists.
    A failure to enqueue is left to the sweep.

    :param new: the target was made in this transaction, so no job of it can exist yet: it
        is enqueued without looking, together with the transaction's other new targets in
        one Redis round trip (a group commit makes many)
    """
    if not new or rate_limit is not None:
        session.info.setdefault("after_commit", []).append(
            lambda: enqueue_job(gateway, kind, target_id, rate_limit=rate_limit))
        return
    gathered_after_commit(session, "enqueue_new_after_commit",
                          lambda jobs: enqueue_new_jobs(gateway, jobs)).append((kind, target_id))


def enqueue_new_jobs(gateway, jobs: Sequence[tuple[str, Any]]) -> None:
    """Enqueue the jobs of ``(kind, target id)`` pairs whose targets are new (no job can
    exist for them), in one pipeline.

    :raises redis.exceptions.RedisError: when Redis is unreachable (the sweep enqueues them)
    """
    by_queue: dict[str, list] = {}
    for kind, target_id in jobs:
        queue_name, func, intervals, leading = job_spec(gateway, kind)
        by_queue.setdefault(queue_name, []).append(Queue.prepare_data(
            func, args=(*leading, target_id), job_id=job_id(kind, target_id),
            timeout=job_timeout(gateway, kind), result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None))
    pipe = gateway.redis.pipeline(transaction=False)
    for queue_name, datas in by_queue.items():
        Queue(queue_name, connection=gateway.redis).enqueue_many(datas, pipeline=pipe)
    pipe.execute()


@dataclass(frozen=True)
class WorkList:
    """A Redis list of ids that batch jobs take from (dispatch: ``gateway.batch``; provider
    reports: ``gateway.tracking``), with at most one batch job queued and not started.

    Taking is the claim: ``LPOP`` with a count is atomic, so two workers never take one id.
    The database stays the source of truth: an id taken and never worked (a killed worker)
    is still owed there, and the sweep queues its own job.
    """

    #: the list of ids
    key: str
    #: set while a batch job is queued and not started yet (it expires: a job lost before
    #: it started cannot hold the list up for long)
    scheduled_key: str
    queue: str
    #: the dotted path of the batch job's function
    func: str
    #: batch job ids are ``<prefix>-<uuid>``
    prefix: str

    def push(self, gateway, ids: Sequence) -> None:
        """List ``ids`` and make sure a batch job is queued.

        :raises redis.exceptions.RedisError: when Redis is unreachable
        """
        pipe = gateway.redis.pipeline(transaction=False)
        pipe.rpush(self.key, *ids)
        self._mark(gateway, pipe)
        if pipe.execute()[-1]:
            self._enqueue(gateway)

    def _mark(self, gateway, redis):
        return redis.set(self.scheduled_key, "1", nx=True,
                         ex=gateway.settings["jobs"]["job_timeout"])

    def schedule(self, gateway) -> bool:
        """Queue a batch job unless one is queued and not started yet. :return: True if
        queued"""
        if not self._mark(gateway, gateway.redis):
            return False
        self._enqueue(gateway)
        return True

    def _enqueue(self, gateway) -> None:
        Queue(self.queue, connection=gateway.redis).enqueue(
            self.func, job_id=f"{self.prefix}-{uuid.uuid4()}",
            # a batch's result kept as long as any job's (it tells an operator, in rq's
            # registry and the console's queues, what ran): rq keeps each in a Redis stream of
            # its own, some 5 KB, and a steady load runs several batch jobs a second (kept ten
            # minutes, they were most of Redis's growth in the 5-minute soak)
            job_timeout=gateway.settings["jobs"]["job_timeout"], result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL)

    def started(self, gateway) -> None:
        """A batch job started: from now on, new ids need (and get) a new job."""
        gateway.redis.delete(self.scheduled_key)

    def take(self, gateway, size: int) -> list[str]:
        """Claim up to ``size`` ids (atomically: no other worker gets them)."""
        return [i.decode() for i in gateway.redis.lpop(self.key, size) or []]

    def give_back(self, gateway, ids: Sequence) -> None:
        """Put ids taken and not worked back at the head of the list, in their order, and
        make sure a batch job will take them."""
        gateway.redis.lpush(self.key, *reversed(list(ids)))
        self.schedule(gateway)

    def length(self, redis) -> int:
        return redis.llen(self.key)

    def listed(self, gateway) -> set[str]:
        """The ids listed now (none when Redis is away: then nothing counts as listed)."""
        try:
            return {i.decode() for i in gateway.redis.lrange(self.key, 0, -1)}
        except RedisError:
            return set()

    def work(self, gateway, size: int, seconds: float,
             work_batch: Callable[[list[str]], Sequence[str]]) -> dict[str, int]:
        """A batch job's loop: ``work_batch`` the listed ids, ``size`` at a time (each once),
        until the list is empty or the job has worked ``seconds`` (then another job carries
        on). :return: the outcomes ``work_batch`` gave, counted"""
        self.started(gateway)
        budget = time.monotonic() + seconds
        counted: dict[str, int] = {}
        while ids := self.take(gateway, size):
            for outcome in work_batch(list(dict.fromkeys(ids))):
                counted[outcome] = counted.get(outcome, 0) + 1
            if time.monotonic() > budget:
                if self.length(gateway.redis):
                    self.schedule(gateway)
                break
        return counted


def oldest_job_age(queue: Queue, now: datetime) -> float | None:
    """Seconds the first job of ``queue`` has waited; None when it has none."""
    for job_id in queue.get_job_ids(0, 1):
        job = queue.fetch_job(job_id)
        if job is not None and job.enqueued_at is not None:
            enqueued = job.enqueued_at
            if enqueued.tzinfo is None:                       # rq writes UTC
                enqueued = enqueued.replace(tzinfo=UTC)
            return max((now - enqueued).total_seconds(), 0.0)
    return None


def dispatch_waiting(gateway) -> bool:
    """Is a dispatch job (a batch, or one request's) waiting for a worker? Long jobs of
    other queues step aside for it between items: rq's queue order only counts when a worker
    picks its next job."""
    return bool(gateway.redis.llen(Queue(QueueNames.DISPATCH, connection=gateway.redis).key))
