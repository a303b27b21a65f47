"""The rq jobs: thin, importable functions that take a request id and nothing else.

Each job reloads what it needs from the database (the source of truth), checks that the work
is still owed (``pending_job``), does it, and clears the mark in the same transaction that
records the outcome, so a job run twice does nothing the second time. A job that fails for
the last time (rq's retries spent) marks its request ``failed`` before giving up, so no
request waits forever on work that will never happen.
"""

from __future__ import annotations

import logging

from flask import current_app
from rq import get_current_job

from .couriers import CourierRejected, NoDriverAvailable
from .events import Event
from .models import ServiceRequest, utcnow
from .queues import enqueue_job
from .records import transition
from .statuses import Status

log = logging.getLogger(__name__)


def current_gateway():
    return current_app.extensions["gateway"]


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
    """Wrap a job body: find the gateway, audit the outcome, and on the last failed attempt
    give up cleanly (the request is marked failed, the job stays in rq's failed registry)."""

    def decorate(body):
        def run(request_id: str):
            gateway = current_gateway()
            try:
                result = body(gateway, request_id)
            except Exception as exc:
                last = _last_attempt()
                log.warning("%s job for request %s failed (%s): %s", kind, request_id,
                            "giving up" if last else "will retry", type(exc).__name__)
                _record_outcome(gateway, request_id, kind, "failed" if last else "retry",
                                give_up=last, error=exc)
                raise
            _record_outcome(gateway, request_id, kind, result)
            return result

        run.__name__ = body.__name__
        run.__doc__ = body.__doc__
        return run

    return decorate


@_job("dispatch")
def dispatch_request(gateway, request_id: str) -> str:
    """Turn a received request into a booking with the first courier that takes it."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.pending_job != "dispatch":
            return "nothing to do"
        service = gateway.services.get(record.service)
        if service is None:
            transition(gateway, session, record, Status.FAILED, source="worker",
                       detail="the service is no longer installed",
                       failure_code="service_unavailable")
            return "failed"
        transition(gateway, session, record, Status.DISPATCHING, source="worker")
        data = gateway.vault.open(record.payload_ciphertext)
        key_type = record.key_type

    order = service.build_order(data, gateway.service_configs.get(service.name, {}),
                                reference=request_id)
    candidates = [name for name, courier in gateway.couriers.items()
                  if courier.can_take(order)
                  and (courier.sandbox or (key_type == "live"
                                           and gateway.settings["mode"] == "live"))]
    chosen = gateway.pm.hook.choose_couriers(gateway=gateway, service=service, order=order,
                                             candidates=list(candidates)) or []
    # A routing plugin may reorder but never widen: a test key must not reach a live courier.
    chosen = [name for name in chosen if name in candidates]
    outcome, reason = Status.FAILED, "no_courier_available"
    for name in chosen:
        try:
            booking = gateway.couriers[name].book(order)
        except (NoDriverAvailable, CourierRejected) as exc:
            reason = "no_driver" if isinstance(exc, NoDriverAvailable) else "rejected"
            with gateway.db.write() as session:
                record = session.get(ServiceRequest, request_id)
                gateway.track(session, Event("courier.book", target=f"request:{request_id}",
                                             outcome=reason, details={"courier": name},
                                             correlation_id=record.correlation_id))
            continue
        with gateway.db.write() as session:
            record = session.get(ServiceRequest, request_id)
            record.provider, record.provider_reference = name, booking.provider_reference
            gateway.track(session, Event("courier.book", target=f"request:{request_id}",
                                         details={"courier": name,
                                                  "provider_reference":
                                                      booking.provider_reference},
                                         correlation_id=record.correlation_id))
            # Cancelled while we were booking: the booking must not stay live at the courier.
            cancelled_meanwhile = Status(record.status).terminal
            record.pending_job = "cancel" if cancelled_meanwhile else None
            record.pending_since = utcnow() if cancelled_meanwhile else None
            transition(gateway, session, record, Status.BOOKED, source=f"courier:{name}",
                       raw_status=booking.raw_status)
        if cancelled_meanwhile:
            enqueue_job(gateway, "cancel", request_id)
            return "cancelled"
        return "booked"
    if reason == "no_driver":
        outcome = Status.NO_DRIVER
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        transition(gateway, session, record, outcome, source="worker",
                   detail="no courier could take this request", failure_code=reason)
    return str(outcome)


@_job("cancel")
def cancel_request(gateway, request_id: str) -> str:
    """Cancel a booked request at its courier, then mark it cancelled."""
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.pending_job != "cancel":
            return "nothing to do"
        provider, reference = record.provider, record.provider_reference
    gateway.couriers[provider].cancel(reference)
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        transition(gateway, session, record, Status.CANCELLED, source=f"courier:{provider}",
                   detail="cancelled at the courier on the agency's request")
    return "cancelled"
