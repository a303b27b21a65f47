"""Intake: the one way a request comes in, whoever brings it.

The agency API calls :func:`submit` today; the console's form and the spreadsheet upload call
it too, so a request is checked, deduplicated and stored the same way wherever it comes from,
and refused with the same codes on the same field paths. The caller describes what was asked
as a :class:`NewRequest`; intake then

1. finds the service and checks that the caller may use it (:func:`service_for`);
2. validates the body with the service's own schema and settings, asks the
   ``eligibility_for`` hook, and lets the service admit or refuse the request;
3. in **one transaction**: answers a repeated ``Idempotency-Key`` with the request it already
   made (a different body under the same key is refused), refuses a second active request for
   a unique reference, takes the limited resource the request needs (shuttle seats), and
   writes the request (personal data encrypted), its first status event, its audit record and
   the mark of the work it is owed (``pending_job``);
4. only after that commit, hands it to dispatch (if Redis is away the mark stays and the
   sweep enqueues it later).

Idempotency keys, active references and capacity belong to the actor's agency *and* key
type (:func:`gateway.records.owned_by`): a test key's request never replays, blocks or takes
the room of a live one. Every refusal is a :mod:`gateway.errors` error; nothing here knows
HTTP.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from . import costs
from .batch import dispatch_after_commit
from .crypto import kept_on
from .db import insert_at_commit, insert_gathered
from .errors import Conflict, Forbidden, Invalid, NotFound
from .events import Event, actor_label
from .group_commit import in_group
from .models import NEW_REQUESTS, ServiceRequest, StatusEvent, new_id, utcnow
from .records import owned_by
from .services import Service
from .statuses import TERMINAL, Status

log = logging.getLogger(__name__)

#: the field path an Idempotency-Key is reported under (the API's header name)
IDEMPOTENCY_FIELD = "Idempotency-Key"
_IDEMPOTENCY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
#: ``session.info`` key of the Idempotency-Keys and active references of requests made in the
#: transaction and not flushed yet
NEW_BY_KEY = "intake_new_by_key"


@dataclass(frozen=True)
class NewRequest:
    """What a caller asks for, before anything is checked.

    :ivar actor: the agency actor making it (``id``, ``key_id``, ``key_type``,
        ``key_prefix``), as authentication produced it
    :ivar service: the service's name
    :ivar body: the request as the caller sent it (JSON-like; validated by intake)
    :ivar idempotency_key: makes a retry safe: the same key and body answer with the request
        already made
    :ivar correlation_id: follows the request through logs, audit and callbacks
    """

    actor: Mapping[str, Any]
    service: str
    body: Any
    idempotency_key: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A stored request, and whether it was made before under the same Idempotency-Key."""

    record: ServiceRequest
    replayed: bool


def service_for(gateway, actor: Mapping[str, Any], name: str) -> Service:
    """The enabled service ``name``, if ``actor`` may use it.

    :raises NotFound: ``service_not_found``
    :raises Forbidden: ``service_not_allowed``
    """
    service = gateway.enabled_services().get(name)
    if service is None:
        raise NotFound("service_not_found", f"No service named {name!r} is offered.")
    if not gateway.allowed(actor, "requests:create", name):
        raise Forbidden("service_not_allowed", f"This agency is not allowed to use {name!r}.")
    return service


def check_idempotency_key(key: str | None) -> None:
    """:raises Invalid: the key is not 1 to 255 visible ASCII characters"""
    if key is not None and not _IDEMPOTENCY_PATTERN.match(key):
        raise Invalid("validation_failed", "The Idempotency-Key header is not valid.",
                      fields={IDEMPOTENCY_FIELD: ["Use 1 to 255 visible ASCII characters."]})


def fingerprint(service: str, body) -> str:
    """A stable digest of what was asked, to tell a retried request from a different one."""
    canonical = json.dumps({"service": service, "body": body}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(gateway, new: NewRequest) -> Accepted:
    """Check, store and queue a new request, or return the one its Idempotency-Key made.

    :raises NotFound: ``service_not_found``
    :raises Forbidden: ``service_not_allowed``
    :raises Invalid: ``validation_failed`` with the field paths at fault, or a service's own
        refusal (``restricted_medicine``, ``not_eligible``, ...)
    :raises Conflict: ``idempotency_key_reused`` (the key was used for another body),
        ``duplicate_reference`` (the reference already has an active request),
        ``capacity_full`` (no room left; ``details.alternatives`` lists other options),
        ``budget_exhausted`` (a budget of the agency for the service is used up and the
        service refuses; with ``on_budget_exhausted: hold`` the request is stored
        ``held_for_budget`` instead, see ``gateway.costs``)
    """
    service, data, config, eligibility = _checked(gateway, new)
    return _store_once(gateway, new, service, data, config, eligibility)


def check(gateway, new: NewRequest) -> dict:
    """Check a request as :func:`submit` would, and store nothing: the validated body.

    What only the store can tell (a reused Idempotency-Key, a second active reference, no
    capacity left) is not checked. The spreadsheet preview (``gateway.uploads``) uses it so
    that a row's errors are the very ones the API would answer.

    :raises NotFound, Forbidden, Invalid: as :func:`submit`
    """
    return _checked(gateway, new)[1]


def _checked(gateway, new: NewRequest):
    """``(service, data, config, eligibility)`` of a request that passed every check that
    needs no database (steps 1 and 2 of the module)."""
    service = service_for(gateway, new.actor, new.service)
    check_idempotency_key(new.idempotency_key)
    if not isinstance(new.body, Mapping):
        raise Invalid("validation_failed", "The request is not valid.",
                      fields={"_body": ["The body must be a JSON object."]})
    config = gateway.service_configs.get(service.name, {})
    try:
        data = service.validate(new.body, config)
        eligibility = decide_eligibility(gateway, service, data, config)
        service.admit(data, config, eligibility)
    except ValidationError as exc:
        raise Invalid.from_messages(exc.messages, "The request body is not valid.") from None
    return service, data, config, eligibility


def decide_eligibility(gateway, service, data, config) -> dict | None:
    """Ask the ``eligibility_for`` hook; keep only the decision, its source and time."""
    answer = gateway.pm.hook.eligibility_for(gateway=gateway, service=service, data=data,
                                             config=config)
    if answer is None:
        return None
    decision = {"eligible": bool(answer["eligible"]), "source": str(answer["source"]),
                "decided_at": utcnow().isoformat().replace("+00:00", "Z")}
    if answer.get("reason"):
        decision["reason"] = str(answer["reason"])
    return decision


def _store_once(gateway, new: NewRequest, service: Service, data: dict, config: dict,
                eligibility: dict | None) -> Accepted:
    """Store the request; when two submissions race on one Idempotency-Key or one active
    reference, the loser's second pass reads what the winner stored and answers from it."""
    for attempt in range(2):
        try:
            return _store(gateway, new, service, data, config, eligibility)
        except IntegrityError:
            if attempt:
                raise Conflict("conflict", "The request could not be stored; try again.") \
                    from None
    raise AssertionError("unreachable")


def _store(gateway, new: NewRequest, service: Service, data: dict, config: dict,
           eligibility: dict | None) -> Accepted:
    """The one transaction of intake (see the module's step 3), shared with the requests
    that arrive at the same time (``gateway.group_commit``)."""
    request_fingerprint = fingerprint(service.name, new.body)
    reference = service.reference(data)
    kept: dict = {}
    sealed = gateway.vault.seal(service.stored_form(data), kept)
    return gateway.writer.run(lambda session: _store_in(
        gateway, session, new, service, data, config, eligibility, request_fingerprint,
        reference, sealed, kept))


def _store_in(gateway, session: Session, new: NewRequest, service: Service, data: dict,
              config: dict, eligibility: dict | None, request_fingerprint: str,
              reference: str | None, sealed: str, kept: dict) -> Accepted:
    with session.no_autoflush:
        # The group's requests reach the database together at its commit (one INSERT per
        # table); until then the ones of this group are found in ``made`` instead.
        return _store_unflushed(gateway, session, new, service, data, config, eligibility,
                                request_fingerprint, reference, sealed, kept)


def _store_unflushed(gateway, session: Session, new: NewRequest, service: Service,
                     data: dict, config: dict, eligibility: dict | None,
                     request_fingerprint: str, reference: str | None,
                     sealed: str, kept: dict) -> Accepted:
    actor, key = new.actor, new.idempotency_key
    owner = (actor["id"], actor["key_type"])
    made = session.info.setdefault(NEW_REQUESTS, {})
    by_key = session.info.setdefault(NEW_BY_KEY, {})
    if key is not None:
        existing = by_key.get((*owner, "key", key)) or session.execute(
            select(ServiceRequest).options(selectinload(ServiceRequest.events))
            .where(owned_by(actor), ServiceRequest.idempotency_key == key)
        ).scalar_one_or_none()
        if existing is not None:
            if existing.request_fingerprint != request_fingerprint:
                raise Conflict(
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used for a different request. "
                    "Use a new key for a new request.")
            return Accepted(existing, replayed=True)
    field = service.unique_reference_field
    active_reference = reference if field and reference else None
    # In a group, a reference already active in the database is left to its unique
    # constraint: the group's flush fails, and each request runs again alone, where this
    # query answers. It spares every request of a group a query for a rare refusal.
    if active_reference is not None and (
            (*owner, service.name, "reference", active_reference) in by_key
            or (not in_group(session) and session.scalar(select(ServiceRequest.id).where(
                owned_by(actor), ServiceRequest.service == service.name,
                ServiceRequest.active_reference == active_reference)) is not None)):
        raise Conflict("duplicate_reference",
                       f"An active request already has this {field}.",
                       fields={field: [
                           "An active request already has this value; cancel it first."]})
    capacity = service.capacity(data, config)
    if capacity is not None:
        # the seats the group's earlier requests took count too
        insert_gathered(session)
        session.flush()
        _take_capacity(session, service.name, actor["key_type"], capacity,
                       lambda taken: service.alternatives(data, config, taken))
    now = utcnow()
    held = costs.admission(gateway, session, actor["id"], actor["key_type"],
                           service.name, now) == "hold"
    pin = f"{secrets.randbelow(10 ** 6):06d}" if service.delivery_pin else None
    # Everything below reaches the database at the commit as plain rows (``insert_at_commit``:
    # one INSERT per table for the whole group, in the order made). The request's object is
    # never added to the session: its row is read from it at the commit (so a ``track_event``
    # hook may still change it), and it answers the caller, a replay in the group and the
    # accepted notice (``new_request``).
    record = ServiceRequest(
        id=new_id(), agency_id=actor["id"], api_key_id=actor["key_id"],
        service=service.name, key_type=actor["key_type"], status=str(Status.RECEIVED),
        external_reference=reference, active_reference=active_reference,
        eligibility=eligibility, payload_ciphertext=sealed,
        idempotency_key=key,
        delivery_pin_ciphertext=gateway.vault.seal(pin, kept) if pin else None,
        request_fingerprint=request_fingerprint, correlation_id=new.correlation_id,
        capacity_key=capacity.key if capacity else None,
        capacity_units=capacity.units if capacity else None,
        pending_job=None if held else "dispatch", pending_since=None if held else now,
        created_at=now, updated_at=now)
    # what was sealed for it, read back by its notice and its answer without decrypting
    kept_on(record, kept)
    gateway.links.issue(record)
    steps = [{"status": str(Status.RECEIVED), "raw_status": None,
              "source": actor_label(actor), "detail": None, "applied": True,
              "created_at": now}]
    if held:
        record.status = str(Status.HELD_FOR_BUDGET)
        steps.append({"status": str(Status.HELD_FOR_BUDGET), "raw_status": None,
                      "source": "budget", "applied": True, "created_at": now,
                      "detail": "the agency's budget for this service is used up; waiting "
                                "for approval"})
    insert_at_commit(session, ServiceRequest.__table__, record)
    for step in steps:
        insert_at_commit(session, StatusEvent.__table__, {"request_id": record.id, **step})
    # the timeline as the answer shows it (its rows are the ones just gathered)
    set_committed_value(record, "events", [StatusEvent(**step) for step in steps])
    made[record.id] = record
    if key is not None:
        by_key[(*owner, "key", key)] = record
    if active_reference is not None:
        by_key[(*owner, service.name, "reference", active_reference)] = record
    gateway.track(session, Event(
        "request.create", actor=actor_label(actor), target=f"request:{record.id}",
        details={"service": service.name, "key_type": actor["key_type"],
                 "key_prefix": actor["key_prefix"], "reference": reference,
                 "eligible": (eligibility or {}).get("eligible")},
        correlation_id=new.correlation_id))
    if not held:
        # Enqueued once the transaction commits, with the other requests of its group.
        dispatch_after_commit(gateway, session, record.id)
    return Accepted(record, replayed=False)


def _take_capacity(session: Session, service_name: str, key_type: str, capacity,
                   alternatives) -> None:
    """Check room for ``capacity`` among active requests, in the caller's transaction.

    Test requests count against a sandbox copy of the resource: they never take a real
    seat, and a live request never fills a test one. SQLite write transactions are already
    serialised; on PostgreSQL an advisory lock per key keeps two requests from taking the
    last seat together.

    :raises Conflict: ``capacity_full``, naming the capacity's field and offering
        ``alternatives(taken)``
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
        raise Conflict("capacity_full",
                       f"Only {max(left, 0)} left of {capacity.limit}; this needs "
                       f"{capacity.units}.",
                       fields={field: ["No room left for this request."]},
                       details={"alternatives": alternatives(taken)})
