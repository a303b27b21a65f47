"""Service request records: lookup scoped to the caller, listing, status changes.

(Requests are made by :mod:`gateway.intake`, the one way in.) The rules that must always hold
live here, once:

* statuses move forward only: every event lands on the timeline, only forward ones apply;
* an agency sees only its own requests: lookups filter by agency, so another agency's id is
  indistinguishable from a missing one;
* a test key and a live key are two worlds, even inside one agency: every lookup, listing,
  Idempotency-Key, active reference and capacity count is scoped by the actor, agency *and*
  key type (:func:`owned_by`), so what a test key made is a missing id to a live key, and
  back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from . import costs
from .callbacks import queue_callback
from .errors import Invalid, NotFound
from .events import Event
from .models import ProviderEventRecord, ServiceRequest, StatusEvent, utcnow
from .notices import notifiers_for
from .statuses import Status, moves_forward


def transition(gateway, session: Session, record: ServiceRequest, status: Status, *,
               source: str, detail: str | None = None, raw_status: str | None = None,
               failure_code: str | None = None) -> bool:
    """Put ``status`` on the timeline; apply it only if it moves the request forward.

    :return: True when the request's status changed
    """
    applied = moves_forward(record.status, status)
    previous = record.status
    event = StatusEvent(request_id=record.id, status=str(status), raw_status=raw_status,
                        source=source, detail=detail, applied=applied)
    session.add(event)
    if applied:
        record.status = str(status)
        record.updated_at = utcnow()
        if failure_code:
            record.failure_code = failure_code
        if Status(status).terminal:
            record.pending_job = None
            record.pending_since = None
            record.active_reference = None
            costs.settle(session, record)
        queue_callback(gateway, session, record, event)
    gateway.track(session, Event(
        "request.status", actor=source, target=f"request:{record.id}",
        outcome="applied" if applied else "ignored",
        details={"from": previous, "to": str(status), "raw_status": raw_status,
                 "failure_code": failure_code},
        correlation_id=record.correlation_id))
    return applied


def owned_by(actor: dict):
    """The condition that scopes requests to what ``actor`` may see: its agency and the type
    of key it holds (a test key never sees a live request, and back)."""
    return and_(ServiceRequest.agency_id == actor["id"],
                ServiceRequest.key_type == actor["key_type"])


def get_for_actor(session: Session, actor: dict, request_id: str) -> ServiceRequest:
    """The request ``request_id`` if ``actor`` may see it (:func:`owned_by`).

    :raises NotFound: ``request_not_found``, the same for a missing id, another agency's
        request and one made with the other type of key
    """
    record = session.execute(
        select(ServiceRequest).options(selectinload(ServiceRequest.events))
        .where(ServiceRequest.id == request_id, owned_by(actor))
    ).scalar_one_or_none()
    if record is None:
        raise NotFound("request_not_found", "No request with this id.")
    return record


CURSOR_PATTERN = r"^\d{1,16}\.[0-9a-f-]{1,36}$"


def encode_cursor(record: ServiceRequest) -> str:
    """A keyset position: creation time in epoch microseconds and the id. Any value of this
    shape is a valid position, so a forged cursor can only move the page, never break it."""
    micros = int(record.created_at.timestamp() * 1_000_000)
    return f"{micros}.{record.id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise Invalid("validation_failed", "The cursor is not valid.",
                      fields={"cursor": ["Not a cursor returned by this API."]})
    micros, _, request_id = cursor.partition(".")
    return datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), request_id


def newest_first_after(query, cursor: str | None):
    """Order ``query`` (over requests) newest first and start it after ``cursor``.

    :raises Invalid: the cursor is not one this API returned
    """
    if cursor:
        when, last_id = decode_cursor(cursor)
        query = query.where(or_(ServiceRequest.created_at < when,
                                and_(ServiceRequest.created_at == when,
                                     ServiceRequest.id < last_id)))
    return query.order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())


def list_for_actor(session: Session, actor: dict, *, service=None, status=None,
                   created_after=None, created_before=None, cursor=None, limit=50):
    """The actor's requests (:func:`owned_by`), newest first, keyset-paginated so deep pages
    cost the same as the first.

    :return: ``(records, next_cursor or None)``
    """
    query = select(ServiceRequest).where(owned_by(actor))
    if service:
        query = query.where(ServiceRequest.service == service)
    if status:
        query = query.where(ServiceRequest.status == status)
    if created_after:
        query = query.where(ServiceRequest.created_at >= created_after)
    if created_before:
        query = query.where(ServiceRequest.created_at < created_before)
    query = newest_first_after(query, cursor)
    rows = session.execute(query.limit(limit + 1)).scalars().all()
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def timeline_entry(event: StatusEvent) -> dict:
    return {
        "status": event.status,
        "raw_status": event.raw_status,
        "source": event.source,
        "detail": event.detail,
        "applied": event.applied,
        "at": event.created_at.isoformat().replace("+00:00", "Z"),
    }


def summary(record: ServiceRequest) -> dict:
    return {
        "id": record.id,
        "service": record.service,
        "status": record.status,
        "reference": record.external_reference,
        "key_type": record.key_type,
        "provider": record.provider,
        "provider_reference": record.provider_reference,
        "failure_code": record.failure_code,
        "created_at": record.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": record.updated_at.isoformat().replace("+00:00", "Z"),
    }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def delivery_time(session: Session, record: ServiceRequest) -> str | None:
    """When the courier handed the delivery over (ISO 8601, UTC), or None if not delivered.

    The one place that says it, for every record of the delivery (a service's FHIR view, what
    is sent on, the monthly statements): the time the provider's report of the delivery gives
    (``occurred_at``), else when that report reached us, else when the delivered status was put
    on the timeline (the own fleet's staff mark it in the gateway). Never the time the record
    last changed. The courier's time, once recorded (``delivered_at``: the proof's time when it
    gives one, ``gateway.proofs``), comes first.
    """
    if record.status != "delivered":
        return None
    if record.delivered_at is not None:
        return _iso(record.delivered_at)
    when = delivery_times(session, [record.id]).get(record.id)
    return _iso(when) if when is not None else None


def delivery_times(session: Session, request_ids: list[str]) -> dict[str, datetime]:
    """:func:`delivery_time`'s rule for many delivered requests at once (a few queries per 500
    ids, not two per request): request id -> when it was handed over (UTC); a request with
    neither a recorded time, a report nor a timeline step is left out."""
    found: dict[str, datetime] = {}
    for at in range(0, len(request_ids), 500):
        chunk = request_ids[at:at + 500]
        recorded = session.execute(
            select(ServiceRequest.id, ServiceRequest.delivered_at)
            .where(ServiceRequest.id.in_(chunk), ServiceRequest.delivered_at.is_not(None)))
        for request_id, delivered in recorded:             # the courier's own time first
            found[request_id] = _aware(delivered)
        reports = session.execute(
            select(ProviderEventRecord.request_id, ProviderEventRecord.occurred_at,
                   ProviderEventRecord.received_at)
            .where(ProviderEventRecord.request_id.in_([i for i in chunk if i not in found]),
                   ProviderEventRecord.status == "delivered",
                   ProviderEventRecord.outcome == "applied")
            .order_by(ProviderEventRecord.id.desc()))
        for request_id, occurred, received in reports:     # the first report wins
            found[request_id] = _aware(occurred or received)
        missing = [i for i in chunk if i not in found]
        if missing:
            steps = session.execute(
                select(StatusEvent.request_id, StatusEvent.created_at)
                .where(StatusEvent.request_id.in_(missing), StatusEvent.status == "delivered",
                       StatusEvent.applied.is_(True))
                .order_by(StatusEvent.id.desc()))
            for request_id, created in steps:
                found[request_id] = _aware(created)
    return found


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def view_request(session: Session, record: ServiceRequest) -> dict:
    """What a service's view (``gateway.services.View``) is given of a request: its summary
    and ``delivered_at`` (:func:`delivery_time`)."""
    return {**summary(record), "delivered_at": delivery_time(session, record)}


def pin_to_agency(gateway, record: ServiceRequest) -> bool:
    """Whether the agency is given the request's handover PIN: its service's
    ``pin_recipient`` is ``agency`` or ``both``, or it is ``patient`` but no notifier may
    carry a notice of this request (none configured for its key type), so the PIN is never
    lost. Otherwise only the citizen gets it, by notice (``gateway.notices``)."""
    if gateway.service_settings(record.service).get("pin_recipient", "patient") != "patient":
        return True
    return not notifiers_for(gateway, record.key_type)


def detail(record: ServiceRequest, vault, links=None, currency: str | None = None, *,
           pin_to_agency: bool = True) -> dict:
    """What the agency that made the request sees of it (its own personal data included).

    :param links: the gateway's :class:`gateway.links.Links`, for ``tracking_url``
    :param currency: the region's, for a cost not yet priced
    :param pin_to_agency: False when the service's ``pin_recipient`` is ``patient`` (the
        PIN goes to the citizen only, :func:`pin_to_agency`): ``delivery_pin`` is null
    """
    def opened(ciphertext):
        return vault.open(ciphertext, on=record) if ciphertext else None

    return {**summary(record),
            "eligibility": record.eligibility,
            "delivery_pin": opened(record.delivery_pin_ciphertext) if pin_to_agency
            else None,
            "proof": opened(record.proof_ciphertext),
            "delivered_at": _iso(record.delivered_at) if record.delivered_at else None,
            "purged_at": record.purged_at.isoformat().replace("+00:00", "Z")
            if record.purged_at else None,
            "tracking_url": links.tracking_url(record) if links is not None else None,
            "cost": costs.cost_view(record, currency),
            "timeline": [timeline_entry(e) for e in record.events]}
