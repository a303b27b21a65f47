"""The sweep: find work the database says is owed and make sure a job exists for it.

It also starts polling for bookings whose provider reports are late: webhooks get lost.

Redis may lose jobs (a restart without persistence, an enqueue that failed after the request
was stored, a worker killed mid-job). The database marks each request's owed work
(``pending_job``) in the same transaction that creates the need, so a periodic pass over
stale marks re-enqueues exactly what is missing; deterministic job ids keep it from doubling
anything. Several nodes may run the loop: a Redis lock lets one pass run at a time.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import select

from .checkpoints import checkpoint_if_due
from .events import Event
from .models import (
    CallbackDelivery,
    Notice,
    ProofImage,
    ProviderEventRecord,
    ServiceRequest,
    Upload,
    utcnow,
)
from .notices import OPEN_STATUSES, PATIENCE
from .proofs import PROOFS
from .purge import purge_expired
from .queues import callback_limit, enqueue_job
from .tracking import REPORTS, due_for_polling, first_listed
from .uploads import JOB_OF as UPLOAD_JOB_OF

log = logging.getLogger(__name__)

LOCK_KEY = "gateway:sweep:lock"
#: how long a proof link may still work (Grab's are signed for about two hours): a lost
#: ``proof`` job is queued again within it, never after
PROOF_LINK_PATIENCE = timedelta(hours=3)
BATCH = 500


def owed_work(gateway) -> list[tuple[str, object]]:
    """Every ``(job kind, target id)`` the database says is owed and stale enough to check:
    requests' pending jobs, unapplied provider reports, undelivered callbacks, citizen notices
    not yet settled, proof images not fetched yet (while their links may still work),
    spreadsheet uploads in progress, and bookings whose reports are late (to poll)."""
    stale_before = utcnow() - timedelta(seconds=gateway.settings["sweep"]["stale_after_seconds"])
    with gateway.db.read() as session:
        work = list(session.execute(
            select(ServiceRequest.pending_job, ServiceRequest.id)
            .where(ServiceRequest.pending_job.is_not(None),
                   ServiceRequest.pending_since <= stale_before)
            .order_by(ServiceRequest.pending_since).limit(BATCH)).all())
        # A report still listed for a report job waits its turn (the list is oldest first):
        # only those before the list's head were taken and may have been lost with a worker.
        head = first_listed(gateway)
        unlisted = [ProviderEventRecord.id < head] if head is not None else []
        work += [("event", event_id) for event_id in session.scalars(
            select(ProviderEventRecord.id)
            .where(ProviderEventRecord.processed_at.is_(None),
                   ProviderEventRecord.received_at <= stale_before, *unlisted)
            .order_by(ProviderEventRecord.id).limit(BATCH))]
        work += [("callback", tuple(row)) for row in session.execute(
            select(CallbackDelivery.id, CallbackDelivery.agency_id)
            .where(CallbackDelivery.delivered_at.is_(None),
                   CallbackDelivery.gave_up_at.is_(None),
                   CallbackDelivery.created_at <= stale_before)
            .order_by(CallbackDelivery.created_at).limit(BATCH)).all()]
        # a notice whose next look was lost with Redis: looked at again (it reschedules);
        # one still queued waits in its agency's line, whose turns job is what it needs
        open_notices = session.execute(
            select(Notice.id, Notice.status, Notice.agency_id)
            .where(Notice.status.in_(OPEN_STATUSES), Notice.updated_at <= stale_before,
                   Notice.created_at >= utcnow() - PATIENCE)
            .order_by(Notice.updated_at).limit(BATCH)).all()
        work += [("notice_later", notice_id) for notice_id, status, _a in open_notices
                 if status != "queued"]
        work += [("notice_turns", agency_id) for agency_id in
                 dict.fromkeys(a for _n, status, a in open_notices if status == "queued")]
        # images still listed for a proofs job wait their turn (behind a backlog, a job of
        # their own each only found them done): only those no longer listed may be lost
        listed = PROOFS.listed(gateway)
        work += [("proof", request_id) for request_id in session.scalars(
            select(ProofImage.request_id).distinct()
            .where(ProofImage.status == "pending", ProofImage.created_at <= stale_before,
                   ProofImage.created_at >= utcnow() - PROOF_LINK_PATIENCE)
            .limit(BATCH)) if request_id not in listed]
        # a spreadsheet upload whose preview or create job was lost (a job at work records
        # each chunk, and is never doubled: enqueueing a live job does nothing)
        work += [(UPLOAD_JOB_OF[status], upload_id) for status, upload_id in session.execute(
            select(Upload.status, Upload.id)
            .where(Upload.status.in_(list(UPLOAD_JOB_OF)), Upload.updated_at <= stale_before)
            .order_by(Upload.updated_at).limit(BATCH)).all()]
    work += [("poll", request_id) for request_id in due_for_polling(gateway, BATCH)]
    return work


def sweep_once(gateway) -> int:
    """Make sure a job exists for all owed work. :return: how many jobs were enqueued."""
    enqueued = []
    if REPORTS.length(gateway.redis):
        REPORTS.schedule(gateway)   # a report job lost before it started: listed reports wait
    for kind, target in owed_work(gateway):
        limit = None
        if kind == "callback":      # under its agency's cap, like when it was first queued
            target, agency_id = target
            limit = callback_limit(gateway, agency_id)
        try:
            if enqueue_job(gateway, kind, target, rate_limit=limit):
                enqueued.append((kind, target))
        except RedisError:
            raise
        except Exception:  # one job rq cannot handle must not stop the rest of the pass
            log.exception("sweep could not enqueue %s %s", kind, target)
    requeued = [(kind, target) for kind, target in enqueued if kind != "poll"]
    if requeued:
        with gateway.db.write() as session:
            for kind, target in requeued:
                gateway.track(session, Event("job.requeue", target=f"{kind}:{target}",
                                             details={"job": kind}))
        log.info("sweep re-enqueued %d job(s)", len(requeued))
    return len(enqueued)


def housekeeping(gateway) -> None:
    """One pass of everything periodic: owed work, the retention purge, then a signed
    checkpoint of the audit chain when one is due."""
    sweep_once(gateway)
    purge_expired(gateway)
    checkpoint_if_due(gateway)


def run_forever(app, stop: threading.Event) -> None:
    """Sweep every ``sweep.interval_seconds`` until ``stop`` is set (a worker's thread)."""
    gateway = app.extensions["gateway"]
    interval = gateway.settings["sweep"]["interval_seconds"]
    while not stop.wait(interval):
        try:
            if gateway.redis.set(LOCK_KEY, "1", nx=True, ex=max(interval - 1, 1)):
                with app.app_context():
                    housekeeping(gateway)
        except RedisError as exc:
            log.warning("sweep skipped: Redis unavailable (%s)", type(exc).__name__)
        except Exception:
            log.exception("sweep failed; will try again")
