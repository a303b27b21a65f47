"""Job queues on Redis (rq): what is enqueued, under which id, with which retries.

Jobs carry request ids only, never personal data (rq pickles arguments into Redis). Each job
has a deterministic id (``<kind>-<request id>``), so enqueueing is idempotent: while a job for
a request is queued or running, enqueueing it again does nothing. That is what lets the sweep
re-enqueue everything the database says is owed, as often as it likes, without doubling work.
"""

from __future__ import annotations

from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus


class QueueNames:
    DISPATCH = "dispatch"
    DEFAULT = "default"

    @classmethod
    def all(cls) -> list[str]:
        return [cls.DISPATCH, cls.DEFAULT]


# pending_job value -> (queue, dotted path of the job function)
JOBS = {
    "dispatch": (QueueNames.DISPATCH, "gateway.jobs.dispatch_request"),
    "cancel": (QueueNames.DEFAULT, "gateway.jobs.cancel_request"),
}

LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
FAILURE_TTL = 30 * 24 * 3600


def job_id(kind: str, request_id: str) -> str:
    return f"{kind}-{request_id}"


def enqueue_job(gateway, kind: str, request_id: str) -> bool:
    """Enqueue the ``kind`` job of a request unless one is already queued or running.

    :return: True when a job was enqueued
    :raises redis.exceptions.RedisError: when Redis is unreachable (the database still holds
        the work; the sweep will enqueue it later)
    """
    queue_name, func = JOBS[kind]
    connection = gateway.redis
    jid = job_id(kind, request_id)
    try:
        existing = Job.fetch(jid, connection=connection)
    except NoSuchJobError:
        existing = None
    if existing is not None:
        if existing.get_status(refresh=False) in LIVE_STATES:
            return False
        existing.delete()
    intervals = gateway.settings["jobs"]["intervals"]
    Queue(queue_name, connection=connection).enqueue(
        func, request_id, job_id=jid,
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        job_timeout=gateway.settings["jobs"]["job_timeout"],
        result_ttl=3600, failure_ttl=FAILURE_TTL)
    return True
