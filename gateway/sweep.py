"""The sweep: find work the database says is owed and make sure a job exists for it.

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

from .events import Event
from .models import ServiceRequest, utcnow
from .queues import enqueue_job

log = logging.getLogger(__name__)

LOCK_KEY = "gateway:sweep:lock"
BATCH = 500


def sweep_once(gateway) -> int:
    """Re-enqueue stale owed work. :return: how many jobs were enqueued."""
    stale_before = utcnow() - timedelta(seconds=gateway.settings["sweep"]["stale_after_seconds"])
    with gateway.db.read() as session:
        rows = session.execute(
            select(ServiceRequest.id, ServiceRequest.pending_job)
            .where(ServiceRequest.pending_job.is_not(None),
                   ServiceRequest.pending_since <= stale_before)
            .order_by(ServiceRequest.pending_since).limit(BATCH)
        ).all()
    enqueued = []
    for request_id, kind in rows:
        if enqueue_job(gateway, kind, request_id):
            enqueued.append((request_id, kind))
    if enqueued:
        with gateway.db.write() as session:
            for request_id, kind in enqueued:
                gateway.track(session, Event("job.requeue", target=f"request:{request_id}",
                                             details={"job": kind}))
        log.info("sweep re-enqueued %d job(s)", len(enqueued))
    return len(enqueued)


def run_forever(app, stop: threading.Event) -> None:
    """Sweep every ``sweep.interval_seconds`` until ``stop`` is set (a worker's thread)."""
    gateway = app.extensions["gateway"]
    interval = gateway.settings["sweep"]["interval_seconds"]
    while not stop.wait(interval):
        try:
            if gateway.redis.set(LOCK_KEY, "1", nx=True, ex=max(interval - 1, 1)):
                with app.app_context():
                    sweep_once(gateway)
        except RedisError as exc:
            log.warning("sweep skipped: Redis unavailable (%s)", type(exc).__name__)
        except Exception:
            log.exception("sweep failed; will try again")
