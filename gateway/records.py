"""Service request records: intake, lookup scoped to the caller, listing, status changes.

The rules that must always hold live here, once:

* a request is written with its first status event, its audit record and the mark of the
  work it is owed (``pending_job``) in one transaction; a job is enqueued only after that;
* statuses move forward only: every event lands on the timeline, only forward ones apply;
* an agency sees only its own requests: lookups filter by agency, so another agency's id is
  indistinguishable from a missing one;
* a test key and a live key are two worlds, even inside one agency: every lookup, listing,
  Idempotency-Key, active reference and capacity count is scoped by the actor, agency *and*
  key type (:func:`owned_by`), so what a test key made is a missing id to a live key, and
  back.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .callbacks import queue_callback
from .errors import ApiError
from .events import Event, actor_label
from .models import ServiceRequest, StatusEvent, new_id, utcnow
from .statuses import TERMINAL, Status, moves_forward


def fingerprint(service: str, body) -> str:
    """A stable digest of what was asked, to tell a retried POST from a different one."""
    canonical = json.dumps({"service": service, "body": body}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


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


@dataclass
class Intake:
    record: ServiceRequest
    created: bool


def create_request(gateway, actor: dict, service_name: str, data: dict, *, reference: str | None,
                   idempotency_key: str | None, request_fingerprint: str, correlation_id: str,
                   unique_reference_field: str | None = None, eligibility: dict | None = None,
                   delivery_pin: str | None = None, capacity=None,
                   alternatives=None) -> Intake:
    """Store a validated request, or return the one an ``Idempotency-Key`` already made.

    Idempotency keys, active references and capacity belong to the actor's agency and key
    type: a test key's request never replays, blocks or takes the room of a live one.

    :param unique_reference_field: when set, ``reference`` may have only one active request
        per agency, key type and service; a second is refused naming this field
    :param capacity: a :class:`gateway.services.Capacity` the request takes, checked and
        taken in the same transaction (test and live requests count apart);
        ``alternatives(taken)`` lists other options when full
    :raises ApiError: 409 (the request conflicts with what is stored, not with the schema):
        ``idempotency_key_reused`` when the key was used for another body,
        ``duplicate_reference`` when the reference already has an active request,
        ``capacity_full`` when the capacity has no room left
    """
    for attempt in range(2):
        try:
            return _create_once(gateway, actor, service_name, data, reference, idempotency_key,
                                request_fingerprint, correlation_id, unique_reference_field,
                                eligibility, delivery_pin, capacity, alternatives)
        except IntegrityError:
            # Two POSTs raced on one Idempotency-Key or one active reference; the second pass
            # reads what the winner stored and answers accordingly.
            if attempt:
                raise ApiError(409, "conflict", "The request could not be stored; try again.") \
                    from None
    raise AssertionError("unreachable")


def _create_once(gateway, actor, service_name, data, reference, idempotency_key,
                 request_fingerprint, correlation_id, unique_reference_field, eligibility,
                 delivery_pin, capacity, alternatives) -> Intake:
    with gateway.db.write() as session:
        if idempotency_key is not None:
            existing = session.execute(
                select(ServiceRequest).options(selectinload(ServiceRequest.events))
                .where(owned_by(actor), ServiceRequest.idempotency_key == idempotency_key)
            ).scalar_one_or_none()
            if existing is not None:
                if existing.request_fingerprint != request_fingerprint:
                    raise ApiError(
                        409, "idempotency_key_reused",
                        "This Idempotency-Key was already used for a different request. "
                        "Use a new key for a new request.")
                return Intake(existing, created=False)
        active_reference = reference if unique_reference_field and reference else None
        if active_reference is not None and session.scalar(
                select(ServiceRequest.id).where(
                    owned_by(actor), ServiceRequest.service == service_name,
                    ServiceRequest.active_reference == active_reference)) is not None:
            raise ApiError(409, "duplicate_reference",
                           f"An active request already has this {unique_reference_field}.",
                           fields={unique_reference_field: [
                               "An active request already has this value; cancel it first."]})
        if capacity is not None:
            _take_capacity(session, service_name, actor["key_type"], capacity, alternatives)
        now = utcnow()
        # Everything below reaches the database in the commit's one flush (batched).
        record = ServiceRequest(
            id=new_id(), agency_id=actor["id"], api_key_id=actor["key_id"], service=service_name,
            key_type=actor["key_type"], status=str(Status.RECEIVED), external_reference=reference,
            active_reference=active_reference, eligibility=eligibility,
            payload_ciphertext=gateway.vault.seal(data), idempotency_key=idempotency_key,
            delivery_pin_ciphertext=gateway.vault.seal(delivery_pin) if delivery_pin else None,
            request_fingerprint=request_fingerprint, correlation_id=correlation_id,
            capacity_key=capacity.key if capacity else None,
            capacity_units=capacity.units if capacity else None,
            pending_job="dispatch", pending_since=now, created_at=now, updated_at=now,
            events=[StatusEvent(status=str(Status.RECEIVED), source=actor_label(actor),
                                created_at=now)])
        session.add(record)
        gateway.track(session, Event(
            "request.create", actor=actor_label(actor), target=f"request:{record.id}",
            details={"service": service_name, "key_type": actor["key_type"],
                     "key_prefix": actor["key_prefix"], "reference": reference,
                     "eligible": (eligibility or {}).get("eligible")},
            correlation_id=correlation_id))
        return Intake(record, created=True)


def _take_capacity(session: Session, service_name: str, key_type: str, capacity,
                   alternatives) -> None:
    """Check room for ``capacity`` among active requests, in the caller's transaction.

    Test requests count against a sandbox copy of the resource: they never take a real
    seat, and a live request never fills a test one. SQLite write transactions are already
    serialised; on PostgreSQL an advisory lock per key keeps two requests from taking the
    last seat together.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(
            f"{service_name}:{key_type}:{capacity.key}".encode())})

    def taken(key: str) -> int:
        return session.scalar(
            select(func.coalesce(func.sum(ServiceRequest.capacity_units), 0)).where(
                ServiceRequest.service == service_name, ServiceRequest.capacity_key == key,
                ServiceRequest.key_type == key_type,
                ServiceRequest.status.not_in([str(s) for s in TERMINAL]))) or 0

    left = capacity.limit - taken(capacity.key)
    if capacity.units > left:
        field = capacity.field or "_body"
        raise ApiError(409, "capacity_full",
                       f"Only {max(left, 0)} left of {capacity.limit}; this needs "
                       f"{capacity.units}.",
                       fields={field: ["No room left for this request."]},
                       details={"alternatives": alternatives(taken) if alternatives else []})


def get_for_actor(session: Session, actor: dict, request_id: str) -> ServiceRequest:
    """The request ``request_id`` if ``actor`` may see it (:func:`owned_by`).

    :raises ApiError: 404 ``request_not_found``, the same for a missing id, another agency's
        request and one made with the other type of key
    """
    record = session.execute(
        select(ServiceRequest).options(selectinload(ServiceRequest.events))
        .where(ServiceRequest.id == request_id, owned_by(actor))
    ).scalar_one_or_none()
    if record is None:
        raise ApiError(404, "request_not_found", "No request with this id.")
    return record


CURSOR_PATTERN = r"^\d{1,16}\.[0-9a-f-]{1,36}$"


def encode_cursor(record: ServiceRequest) -> str:
    """A keyset position: creation time in epoch microseconds and the id. Any value of this
    shape is a valid position, so a forged cursor can only move the page, never break it."""
    micros = int(record.created_at.timestamp() * 1_000_000)
    return f"{micros}.{record.id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ApiError(422, "validation_failed", "The cursor is not valid.",
                       fields={"cursor": ["Not a cursor returned by this API."]})
    micros, _, request_id = cursor.partition(".")
    return datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), request_id


def newest_first_after(query, cursor: str | None):
    """Order ``query`` (over requests) newest first and start it after ``cursor``.

    :raises ApiError: the cursor is not one this API returned
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


def detail(record: ServiceRequest, vault) -> dict:
    """What the agency that made the request sees of it (its own personal data included)."""
    def opened(ciphertext):
        return vault.open(ciphertext) if ciphertext else None

    return {**summary(record),
            "eligibility": record.eligibility,
            "delivery_pin": opened(record.delivery_pin_ciphertext),
            "proof": opened(record.proof_ciphertext),
            "purged_at": record.purged_at.isoformat().replace("+00:00", "Z")
            if record.purged_at else None,
            "timeline": [timeline_entry(e) for e in record.events]}
