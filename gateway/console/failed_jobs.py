"""Failed rq jobs, as the console shows them and as an admin retries or discards them.

A job's id says what it was for (``<kind>-<target id>``, see ``gateway.queues``), so the page
names the job without unpickling its arguments. Of the error, only the last line of the
exception is kept: a traceback may hold local values, and jobs handle requests whose
personal data must never reach a page; the last line names the exception and its message,
which is what an operator acts on. The full traceback stays in Redis and the worker's log.

Retry puts the job back on its queue as it was (rq's own requeue); discard deletes it. Both
first take the job out of the failed registry, which only one admin can do, so two people
pressing the same button act once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from ..queues import JOBS, QueueNames

#: failed jobs shown per queue, newest first
LIST_LIMIT = 100
MAX_ERROR_LENGTH = 300
#: what a job's target id is, by job kind
TARGETS = {"dispatch": "request", "cancel": "request", "poll": "request",
           "event": "event", "callback": "callback"}


class JobGone(Exception):
    """The job is no longer a failed job (retried or discarded meanwhile, or expired)."""


@dataclass
class FailedJob:
    queue: str
    id: str
    kind: str | None
    target_kind: str | None
    target_id: str | None
    failed_at: datetime | None
    #: the exception's last line, shortened; None when rq kept no result
    error: str | None


def describe_id(job_id: str) -> tuple[str | None, str | None, str | None]:
    """``dispatch-<uuid>`` -> ``("dispatch", "request", "<uuid>")``; unknown ids -> Nones."""
    kind, _, target = job_id.partition("-")
    if kind in JOBS and target:
        return kind, TARGETS.get(kind), target
    return None, None, None


def last_line(traceback: str | None) -> str | None:
    """The exception line of a formatted traceback: its last non-blank line."""
    lines = [line.strip() for line in (traceback or "").splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1]
    return line if len(line) <= MAX_ERROR_LENGTH else line[:MAX_ERROR_LENGTH - 1] + "…"


def _error_of(job: Job) -> str | None:
    for result in job.results():
        if result.exc_string:
            return last_line(result.exc_string)
    return None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def failed_jobs(redis, queue: str, limit: int = LIST_LIMIT) -> list[FailedJob]:
    """The newest failed jobs of ``queue``.

    :raises redis.exceptions.RedisError: when Redis is unreachable
    """
    ids = FailedJobRegistry(queue, connection=redis).get_job_ids(0, limit - 1, desc=True)
    listed = []
    for job_id, job in zip(ids, Job.fetch_many(ids, connection=redis), strict=True):
        kind, target_kind, target_id = describe_id(job_id)
        listed.append(FailedJob(
            queue, job_id, kind, target_kind, target_id,
            failed_at=_aware(job.ended_at) if job else None,
            error=_error_of(job) if job else None))
    return listed


def _registry(redis, queue: str) -> FailedJobRegistry:
    if queue not in QueueNames.all():
        raise JobGone(queue)
    return FailedJobRegistry(queue, connection=redis)


def retry(redis, queue: str, job_id: str) -> None:
    """Put a failed job back on its queue. :raises JobGone: if it is not a failed job now"""
    try:
        _registry(redis, queue).requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError) as exc:
        raise JobGone(job_id) from exc


def discard(redis, queue: str, job_id: str) -> None:
    """Delete a failed job for good. :raises JobGone: if it is not a failed job now"""
    if not _registry(redis, queue).remove(job_id):
        raise JobGone(job_id)
    # Its data may have expired already; leaving the registry was then all there was to do.
    with contextlib.suppress(NoSuchJobError):
        Job.fetch(job_id, connection=redis).delete()
