"""The rq jobs: thin, importable functions that take a request id and nothing else.

Each job reloads what it needs from the database (the source of truth), checks that the work
is still owed (``pending_job``), does it, and clears the mark in the same transaction that
records the outcome, so a job run twice does nothing the second time. A job that fails for
the last time (rq's retries spent) marks its request ``failed`` before giving up, so no
request waits forever on work that will never happen.
"""

from __future__ import annotations

import contextlib
import logging

from flask import current_app
from redis.exceptions import LockError, RedisError
from rq import get_current_job

from .callbacks import CallbackRetry, deliver, give_up
from .context import correlation_id
from .dispatch import cancel_bookings, dispatch
from .events import Event
from .models import ServiceRequest
from .records import transition
from .statuses import Status
from .tracking import apply_provider_event, poll

log = logging.getLogger(__name__)


def current_gateway():
    """The worker's gateway, its settings brought up to date with the console's (cheap)."""
    gateway = current_app.extensions["gateway"]
    gateway.refresh_config()
    return gateway


def _last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _record_outcome(gateway, request_id: str, kind: str, outcome: str, *, give_up=False,
                    error: Exception | None = None) -> None:
    """Audit a job's outcome; on the last failed attempt, fail the request it owed work to."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if give_up and record is not None and record.pending_job == kind:
            transition(gateway, session, record, Status.FAILED, source="worker",
                       detail=f"{kind} failed after retries", failure_code=f"{kind}_error")
        details = {"error": type(error).__name__} if error is not None else {}
        gateway.track(session, Event(f"job.{kind}", actor="worker",
                                     target=f"request:{request_id}", outcome=outcome,
                                     details=details,
                                     correlation_id=record.correlation_id if record else None))


def _job(kind: str):
    """Wrap a job body: find the gateway, run it alone, audit the outcome, and on the last
    failed attempt give up cleanly (the request is marked failed, the job stays in rq's
    failed registry).

    Alone: a job the sweep re-enqueued because its first run looked lost (a killed worker,
    a job dropped mid-dequeue) may meet that first run still going. A Redis lock per job
    kind and request lets one run work; the other ends at once with "busy", and the
    work stays marked as owed in the database until it is done.
    """

    def decorate(body):
        def run(request_id: str):
            gateway = current_gateway()
            with gateway.db.read() as session:
                record = session.get(ServiceRequest, request_id)
                correlation_id.set(record.correlation_id if record else None)
            lock = gateway.redis.lock(f"gateway:job-lock:{kind}:{request_id}",
                                      timeout=gateway.settings["jobs"]["job_timeout"] + 10)
            if not lock.acquire(blocking=False):
                return "busy"
            try:
                result = body(gateway, request_id)
            except Exception as exc:
                last = _last_attempt()
                log.warning("%s job for request %s failed (%s): %s", kind, request_id,
                            "giving up" if last else "will retry", type(exc).__name__)
                _record_outcome(gateway, request_id, kind, "failed" if last else "retry",
                                give_up=last, error=exc)
                raise
            finally:
                with contextlib.suppress(LockError, RedisError):
                    lock.release()
            _record_outcome(gateway, request_id, kind, result)
            return result

        run.__name__ = body.__name__
        run.__doc__ = body.__doc__
        return run

    return decorate


@_job("dispatch")
def dispatch_request(gateway, request_id: str) -> str:
    """Turn a received request into one booking (see ``gateway.dispatch``)."""
    return dispatch(gateway, request_id)


@_job("cancel")
def cancel_request(gateway, request_id: str) -> str:
    """Cancel at the courier whatever booking a cancelled request may hold."""
    return cancel_bookings(gateway, request_id)


def poll_request(request_id: str) -> str:
    """Ask the courier for a booking's status when its reports are late."""
    return poll(current_gateway(), request_id)


def apply_event(event_id: int) -> str:
    """Apply one stored provider report to its request."""
    return apply_provider_event(current_gateway(), event_id)


def deliver_callback(delivery_id: str) -> str:
    """POST one status change to the agency's callback URL, signed (``gateway.callbacks``)."""
    gateway = current_gateway()
    try:
        return deliver(gateway, delivery_id)
    except CallbackRetry:
        if _last_attempt():
            give_up(gateway, delivery_id)
        raise
