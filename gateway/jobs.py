"""The rq jobs: thin, importable functions that take a request id and nothing else.

Each job reloads what it needs from the database (the source of truth), checks that the work
is still owed (``pending_job``), does it, and clears the mark in the same transaction that
records the outcome, so a job run twice does nothing the second time. A job that fails for
the last time (rq's retries spent) marks its request ``failed`` before giving up, so no
request waits forever on work that will never happen.

Every job runs as the unit of work of the request it serves (``gateway.context``): its log
lines, audit records and provider calls carry that request's correlation id, the one the
API took from the agency's ``X-Correlation-ID``. Its outcome is counted
(``gateway_jobs_total``) and logged.
"""

from __future__ import annotations

import contextlib
import logging
import time

from flask import current_app
from redis.exceptions import LockError, RedisError
from rq import get_current_job

from . import context, plates, uploads
from .batch import calls_pool, work_the_list
from .callbacks import CallbackRetry, deliver, give_up
from .dispatch import WaitForCircuit, cancel_bookings, dispatch
from .events import Event
from .models import CallbackDelivery, Notice, ProviderEventRecord, ServiceRequest
from .notices import advance_notice, give_turns
from .proofs import fetch_proofs, work_the_proofs
from .queues import enqueue_job, request_lock
from .records import transition
from .statuses import Status
from .tracking import apply_in_order, find_attempt, poll, work_the_inbox

log = logging.getLogger(__name__)


def current_gateway():
    """The worker's gateway, its settings brought up to date with the console's (cheap)."""
    gateway = current_app.extensions["gateway"]
    gateway.refresh_config()
    return gateway


def _last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _request_of(session, kind: str, target_id) -> ServiceRequest | None:
    """The request a job works for: its target, or what its target (a provider report, a
    callback) belongs to. None for a report that matches no booking (yet)."""
    if kind == "event":
        row = session.get(ProviderEventRecord, target_id)
        if row is None:
            return None
        if row.request_id is None:
            attempt = find_attempt(session, row)
            return session.get(ServiceRequest, attempt.request_id) if attempt else None
        return session.get(ServiceRequest, row.request_id)
    if kind == "callback":
        delivery = session.get(CallbackDelivery, target_id)
        return session.get(ServiceRequest, delivery.request_id) if delivery else None
    if kind in ("notice", "notice_later"):
        notice = session.get(Notice, target_id)
        return session.get(ServiceRequest, notice.request_id) if notice else None
    return session.get(ServiceRequest, target_id)


@contextlib.contextmanager
def _unit_of_work(gateway, kind: str, target_id):
    """Run as the request's unit of work, and put the previous one back afterwards (a
    ``SimpleWorker`` runs job after job in one thread)."""
    with gateway.db.read() as session:
        record = _request_of(session, kind, target_id)
        found = (record.id, record.correlation_id) if record is not None else (None, None)
    with context.bound(request_id=found[0], correlation_id=found[1], job_kind=kind):
        yield


def _record_outcome(gateway, request_id: str, kind: str, outcome: str, *, give_up=False,
                    error: Exception | None = None) -> None:
    """Audit a job's outcome; on the last failed attempt, fail the request it owed work to."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if give_up and record is not None and record.pending_job == kind:
            transition(gateway, session, record, Status.FAILED, source="worker",
                       detail=f"{kind} failed after retries", failure_code=f"{kind}_error")
            # Owed no longer (a request that had ended stays as it was, the failure on its
            # timeline), so the sweep does not queue it again for ever.
            record.pending_job, record.pending_since = None, None
        details = {"error": type(error).__name__} if error is not None else {}
        gateway.track(session, Event(f"job.{kind}", actor="worker",
                                     target=f"request:{request_id}", outcome=outcome,
                                     details=details,
                                     correlation_id=record.correlation_id if record else None))


def _alone_and_audited(gateway, kind: str, request_id: str, body) -> str:
    """Run a request's job alone, audit its outcome, and on the last failed attempt give up
    cleanly (the request is marked failed, the job stays in rq's failed registry).

    Alone: a job the sweep re-enqueued because its first run looked lost (a killed worker,
    a job dropped mid-dequeue) may meet that first run still going. A Redis lock per job
    kind and request lets one run work; the other ends at once with "busy", and the
    work stays marked as owed in the database until it is done.
    """
    lock = request_lock(gateway, kind, request_id)
    if not lock.acquire(blocking=False):
        return "busy"
    try:
        result = body(gateway, request_id)
    except WaitForCircuit as wait:
        # Not a failure: queued again for when the circuit half-opens, no retry spent.
        enqueue_job(gateway, "dispatch_later", request_id, delay=max(wait.seconds, 1))
        result = "waiting for circuit"
    except Exception as exc:  # logged and counted by the caller, ``_job``
        last = _last_attempt()
        _record_outcome(gateway, request_id, kind, "failed" if last else "retry",
                        give_up=last, error=exc)
        raise
    finally:
        with contextlib.suppress(LockError, RedisError):
            lock.release()
    _record_outcome(gateway, request_id, kind, result)
    return result


def _job(kind: str, *, alone: bool = False):
    """Wrap a job body ``(gateway, target id) -> outcome`` into the function rq runs.

    Every job: the gateway found and refreshed, the unit of work set for the logs and the
    audit, the outcome counted and logged (``retry``/``failed`` when it raises). With
    ``alone`` (the request's own jobs: dispatch, cancel), see :func:`_alone_and_audited`.
    """

    def decorate(body):
        def run(target_id):
            gateway = current_gateway()
            with _unit_of_work(gateway, kind, target_id):
                started = time.monotonic()
                try:
                    outcome = _alone_and_audited(gateway, kind, target_id, body) if alone \
                        else body(gateway, target_id)
                except Exception as exc:
                    outcome = "failed" if _last_attempt() else "retry"
                    _finished(gateway, kind, target_id, outcome, started, exc)
                    raise
                _finished(gateway, kind, target_id, outcome, started)
                return outcome

        run.__name__ = body.__name__
        run.__qualname__ = body.__qualname__
        run.__doc__ = body.__doc__
        return run

    return decorate


def _finished(gateway, kind: str, target_id, outcome: str, started: float | None,
              error: Exception | None = None, *, duration_ms: float | None = None) -> None:
    """Count and log a job's (or a batch's item's) outcome; its duration since ``started``
    (monotonic), or ``duration_ms`` as measured by a batch."""
    gateway.metrics.count_job(kind, outcome)
    if duration_ms is None:
        duration_ms = round((time.monotonic() - started) * 1000, 1) if started else 0.0
    log.log(logging.WARNING if error is not None else logging.INFO,
            "%s job %s: %s%s", kind, target_id, outcome,
            f" ({type(error).__name__})" if error is not None else "",
            extra={"outcome": outcome, "duration_ms": duration_ms})


@_job("dispatch", alone=True)
def dispatch_request(gateway, request_id: str) -> str:
    """Turn a received request into one booking (see ``gateway.dispatch``)."""
    return dispatch(gateway, request_id)


def dispatch_batch() -> dict:
    """Book the requests waiting in the dispatch list, in batches (see ``gateway.batch``)."""
    gateway = current_gateway()
    started = time.monotonic()
    outcomes = work_the_list(gateway)
    log.info("dispatch batch job: %s", ", ".join(f"{n} {o}" for o, n in outcomes.items())
             or "nothing waiting", extra={"duration_ms": round((time.monotonic() - started)
                                                               * 1000, 1)})
    return outcomes


@_job("dispatch_later")
def wake_dispatch(gateway, request_id: str) -> str:
    """A courier's circuit half-opened: queue the dispatch job that waited for it (a job
    apart, so a dispatch job can schedule this one while it runs)."""
    enqueued = enqueue_job(gateway, "dispatch", request_id)
    return "queued" if enqueued else "already queued"


@_job("cancel", alone=True)
def cancel_request(gateway, request_id: str) -> str:
    """Cancel at the courier whatever booking a cancelled request may hold."""
    return cancel_bookings(gateway, request_id)


@_job("poll")
def poll_request(gateway, request_id: str) -> str:
    """Ask the courier for a booking's status when its reports are late."""
    return poll(gateway, request_id)


def ask_for_plates() -> dict:
    """Ask the couriers for the plates their reports left out, in batches (see
    ``gateway.plates``)."""
    gateway = current_gateway()
    started = time.monotonic()
    outcomes = plates.ask_for_plates(gateway)
    log.info("plates job: %s", ", ".join(f"{n} {o}" for o, n in outcomes.items())
             or "nothing waiting", extra={"duration_ms": round((time.monotonic() - started)
                                                               * 1000, 1)})
    return outcomes


@_job("event")
def apply_event(gateway, event_id: int) -> str:
    """Apply one stored provider report to its request (after the earlier ones of its
    booking): a report a batch handed over, or every report when batches are off."""
    return apply_in_order(gateway, event_id)


def apply_reports() -> dict:
    """Apply the provider reports waiting in the list, in batches (see ``gateway.tracking``):
    a chunk in one transaction, each report in a savepoint and as its request's unit of work;
    one that fails is handed to its own ``event`` job and never fails its neighbours."""
    gateway = current_gateway()
    started = time.monotonic()

    def finished(event_id: int, outcome: str, error, applied) -> None:
        found = (applied.request_id, applied.correlation_id) if applied else (None, None)
        with context.bound(request_id=found[0], correlation_id=found[1], job_kind="event"):
            _finished(gateway, "event", event_id, outcome if error is None else "retry",
                      None, error, duration_ms=applied.duration_ms if applied else None)

    outcomes = work_the_inbox(gateway, finished)
    log.info("report batch job: %s", ", ".join(f"{n} {o}" for o, n in outcomes.items())
             or "nothing waiting", extra={"duration_ms": round((time.monotonic() - started)
                                                               * 1000, 1)})
    return outcomes


@_job("proof", alone=True)
def fetch_proof_images(gateway, request_id: str) -> str:
    """Fetch a request's proof-of-delivery images before their links expire
    (``gateway.proofs``)."""
    return fetch_proofs(gateway, request_id, last_try=_last_attempt())


def fetch_proofs_batch() -> dict:
    """Fetch the proof images waiting, several requests' at a time (see ``gateway.proofs``)."""
    gateway = current_gateway()
    started = time.monotonic()
    pool = calls_pool(gateway.settings["dispatch"]["batch_concurrency"])
    outcomes = work_the_proofs(gateway, pool)
    log.info("proofs job: %s", ", ".join(f"{n} {o}" for o, n in outcomes.items())
             or "nothing waiting", extra={"duration_ms": round((time.monotonic() - started)
                                                               * 1000, 1)})
    return outcomes


@_job("callback")
def deliver_callback(gateway, delivery_id: str) -> str:
    """POST one status change to the agency's callback URL, signed (``gateway.callbacks``)."""
    try:
        return deliver(gateway, delivery_id)
    except CallbackRetry:
        if _last_attempt():
            give_up(gateway, delivery_id)
        raise


def run_registered(kind: str, request_id: str) -> str:
    """Run a plugin's job kind (``register_jobs``) for a request, like the core's own: alone,
    audited, counted, and given up cleanly when its retries are spent."""
    registered = current_gateway().job_kinds[kind]
    return _job(kind, alone=True)(registered.run)(request_id)


@_job("notice")
def send_notice(gateway, notice_id: str) -> str:
    """Do what is due for one citizen notice: send, fall back, hold (``gateway.notices``)."""
    return advance_notice(gateway, notice_id, last_try=_last_attempt())


@_job("notice_later")
def wake_notice(gateway, notice_id: str) -> str:
    """A notice's time has come (quiet hours over, its turn, its fallback deadline): queue
    its send job (a job apart, so a send job can schedule this one while it runs)."""
    enqueued = enqueue_job(gateway, "notice", notice_id)
    return "queued" if enqueued else "already queued"


@_job("notice_turns")
def give_notice_turns(gateway, agency_id: str) -> str:
    """Hand an agency's notice tokens to its notices waiting over its rate
    (``gateway.notices``)."""
    return give_turns(gateway, agency_id)


@_job("notice_turns_later")
def wake_notice_turns(gateway, agency_id: str) -> str:
    """The agency's next notice token exists: queue its turns job (a job apart, so a turns
    job can schedule this one while it runs)."""
    enqueued = enqueue_job(gateway, "notice_turns", agency_id)
    return "queued" if enqueued else "already queued"


@_job("upload_preview")
def preview_upload(gateway, upload_id: str) -> str:
    """Check every row of a spreadsheet upload through intake, making nothing."""
    return uploads.preview(gateway, upload_id)


@_job("upload_create")
def create_upload(gateway, upload_id: str) -> str:
    """Make a confirmed upload's valid rows into requests, chunk by chunk."""
    return uploads.create(gateway, upload_id)
