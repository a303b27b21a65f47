"""The retention purge (UU PDP: keep personal data no longer than the purpose needs).

Once a request has ended and its service's ``retention_days`` have passed, its personal data
is removed: the sealed request body, the delivery PIN and proof, its proof-of-delivery images
(the ``proof_images`` rows, deleted), what its own-fleet job
showed staff, the sealed details of its provider reports, and its notices' number, their
parameters and the keyed digest of the number, the courier's first name and plate, and the
free text of its survey answer (the scores stay: they are the index). What remains (statuses,
timeline, attempts, references, the audit trail) was never personal, so the history stays
whole and verifiable. Each purge is itself audited.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select, update

from .events import Event
from .models import (
    CourierAttempt,
    FleetJob,
    Notice,
    ProofImage,
    ProviderEventRecord,
    ServiceRequest,
    SurveyAnswer,
    utcnow,
)
from .statuses import TERMINAL

log = logging.getLogger(__name__)

BATCH = 500


def purge_expired(gateway, now=None) -> int:
    """Purge every ended request past its retention. :return: how many were purged."""
    now = now or utcnow()
    total = 0
    names = set(gateway.services)
    with gateway.db.read() as session:
        names |= set(session.scalars(select(ServiceRequest.service).distinct()))
    for name in sorted(names):
        days = gateway.service_settings(name).get("retention_days", 90)
        cutoff = now - timedelta(days=days)
        while True:
            with gateway.db.read() as session:
                ids = list(session.scalars(
                    select(ServiceRequest.id).where(
                        ServiceRequest.service == name, ServiceRequest.purged_at.is_(None),
                        ServiceRequest.status.in_([str(s) for s in TERMINAL]),
                        ServiceRequest.updated_at < cutoff).limit(BATCH)))
            if not ids:
                break
            _purge(gateway, ids, now, days)
            total += len(ids)
    if total:
        log.info("purged personal data of %d request(s)", total)
    return total


def _purge(gateway, ids: list[str], now, days: int) -> None:
    with gateway.db.write() as session:
        session.execute(update(ServiceRequest).where(ServiceRequest.id.in_(ids)).values(
            payload_ciphertext=None, delivery_pin_ciphertext=None, proof_ciphertext=None,
            courier_first_name=None, courier_plate=None, purged_at=now))
        session.execute(delete(ProofImage).where(ProofImage.request_id.in_(ids)))
        # the survey's scores stay (the index); its free text may name someone
        session.execute(update(SurveyAnswer).where(SurveyAnswer.request_id.in_(ids)).values(
            comment_ciphertext=None, complaint_ciphertext=None))
        references = select(CourierAttempt.reference).where(CourierAttempt.request_id.in_(ids))
        session.execute(update(FleetJob).where(FleetJob.reference.in_(references)).values(
            order_ciphertext=gateway.vault.seal({"purged": True})))
        session.execute(update(ProviderEventRecord)
                        .where(ProviderEventRecord.request_id.in_(ids))
                        .values(details_ciphertext=None))
        session.execute(update(Notice).where(Notice.request_id.in_(ids)).values(
            to_ciphertext=gateway.vault.seal(""), params_ciphertext=gateway.vault.seal({}),
            phone_digest=""))
        for request_id in ids:
            gateway.track(session, Event("request.purge", target=f"request:{request_id}",
                                         details={"retention_days": days}))
