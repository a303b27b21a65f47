"""What people do to a request once it exists: cancel it, or dispatch it again now.

Shared by the agency API and the console, so a cancel means the same wherever it comes
from: the rules, the audit record and the work owed to the courier are decided here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.exceptions import RedisError
from sqlalchemy import select

from .errors import Conflict, NotFound
from .events import Event
from .models import CourierAttempt, ServiceRequest, utcnow
from .queues import enqueue_after_commit, enqueue_job
from .records import transition
from .statuses import UNRESOLVED_ATTEMPTS, Status

log = logging.getLogger(__name__)

# Before a courier holds the request, cancelling is immediate; after, it is asked of the courier.
CANCEL_LOCALLY = {Status.RECEIVED, Status.HELD_FOR_BUDGET, Status.DISPATCHING}
#: a dispatch may be asked for again only while no courier holds the request
RETRYABLE = {Status.RECEIVED, Status.DISPATCHING, Status.OUTCOME_UNKNOWN}


def _enqueue(gateway, kind: str, request_id: str) -> None:
    try:
        enqueue_job(gateway, kind, request_id)
    except RedisError as exc:
        log.warning("enqueue of %s %s deferred to the sweep: %s", kind, request_id,
                    type(exc).__name__)


def _load(session, request_id: str, find: Callable | None) -> ServiceRequest:
    record = find(session) if find else session.get(ServiceRequest, request_id)
    if record is None:
        raise NotFound("request_not_found", "No request with this id.")
    return record


def cancel_request(gateway, request_id: str, actor: str, correlation_id: str | None, *,
                   find: Callable | None = None, authorize: Callable | None = None,
                   reason: str = "cancelled by the agency") -> None:
    """Cancel at once if no courier holds the request yet, otherwise at the courier.

    :param find: loads the record in a session (the API scopes it to the caller's agency)
    :param authorize: called with the record; raises if the caller may not cancel it
    :raises NotFound: ``request_not_found``
    :raises Conflict: ``request_not_cancellable`` once it has ended
    """
    with gateway.db.write() as session:
        record = _load(session, request_id, find)
        if authorize:
            authorize(record)
        status = Status(record.status)
        if status.terminal:
            raise Conflict("request_not_cancellable",
                           f"The request is already {status.value}.")
        gateway.track(session, Event("request.cancel", actor=actor,
                                     target=f"request:{record.id}",
                                     correlation_id=correlation_id or record.correlation_id))
        if status in CANCEL_LOCALLY and record.provider is None:
            transition(gateway, session, record, Status.CANCELLED, source=actor, detail=reason)
            # An attempt whose answer never came may have booked: release it at the courier.
            enqueue_cancel = session.scalar(select(CourierAttempt.id).where(
                CourierAttempt.request_id == record.id,
                CourierAttempt.state.in_(UNRESOLVED_ATTEMPTS)).limit(1)) is not None
            if enqueue_cancel:
                record.pending_job, record.pending_since = "cancel", utcnow()
        else:
            record.pending_job, record.pending_since = "cancel", utcnow()
            enqueue_cancel = True
    if enqueue_cancel:
        _enqueue(gateway, "cancel", request_id)


def retry_dispatch(gateway, request_id: str, actor: str, correlation_id: str | None) -> None:
    """Ask for a dispatch now, for a request no courier holds yet (stuck behind an open
    circuit, or whose dispatch job was lost). Safe to repeat: the job id is deterministic and
    dispatch reconciles earlier attempts by our reference before it books anything.

    :raises NotFound: ``request_not_found``
    :raises Conflict: ``request_not_retryable`` once a courier holds it or it ended
    """
    with gateway.db.write() as session:
        record = _load(session, request_id, None)
        status = Status(record.status)
        if status not in RETRYABLE or record.provider is not None \
                or record.pending_job not in (None, "dispatch"):
            raise Conflict("request_not_retryable",
                           f"The request is {status.value}; only a request no courier holds "
                           "yet can be dispatched again.")
        record.pending_job, record.pending_since = "dispatch", utcnow()
        gateway.track(session, Event("request.retry_dispatch", actor=actor,
                                     target=f"request:{record.id}",
                                     correlation_id=correlation_id or record.correlation_id))
    _enqueue(gateway, "dispatch", request_id)


def _held(session, request_id: str) -> ServiceRequest:
    record = _load(session, request_id, None)
    if record.status != Status.HELD_FOR_BUDGET:
        raise Conflict("request_not_held", "The request is not held for its budget.")
    return record


def release_held(gateway, request_id: str, actor: str) -> None:
    """Approve a request held for its budget (``gateway.costs``): it is dispatched, and may
    go over the budget (its reservation is forced).

    :raises NotFound: ``request_not_found``
    :raises Conflict: ``request_not_held``
    """
    with gateway.db.write() as session:
        record = _held(session, request_id)
        record.budget_approved_by = actor[:128]
        # Held sits after received; a released request takes the next step, dispatching.
        record.status = str(Status.RECEIVED)
        transition(gateway, session, record, Status.DISPATCHING, source=actor,
                   detail="released from the budget hold")
        record.pending_job, record.pending_since = "dispatch", utcnow()
        gateway.track(session, Event("budget.release", actor=actor,
                                     target=f"request:{record.id}",
                                     correlation_id=record.correlation_id))
        enqueue_after_commit(gateway, session, "dispatch", record.id)


def refuse_held(gateway, request_id: str, actor: str) -> None:
    """Refuse a request held for its budget: it fails with ``budget_exhausted``.

    :raises NotFound: ``request_not_found``
    :raises Conflict: ``request_not_held``
    """
    with gateway.db.write() as session:
        record = _held(session, request_id)
        transition(gateway, session, record, Status.FAILED, source=actor,
                   detail="refused: the agency's budget for this service is used up",
                   failure_code="budget_exhausted")
        gateway.track(session, Event("budget.refuse", actor=actor,
                                     target=f"request:{record.id}",
                                     correlation_id=record.correlation_id))
