"""The database tables: the source of truth for agencies, keys, requests and their history.

Redis only carries work; anything a job needs is found here again from an id. Personal data
lives only in ``service_requests.payload_ciphertext`` (encrypted, see ``gateway.crypto``);
every other column is safe to show an operator or to write to a log.

Schema changes go through Alembic migrations in ``gateway/migrations``; a test checks that
the models and the migrations agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """Timestamps are stored as naive UTC and always come back timezone-aware (UTC).

    SQLite keeps no zone and PostgreSQL's ``timestamp with time zone`` converts to the session
    zone; storing naive UTC everywhere makes both engines return the same instant.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Agency(Base):
    """A government body that calls the API (the health office, a puskesmas, ...)."""

    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    services: Mapped[list] = mapped_column(JSON, default=list)
    #: extra powers beyond using services, e.g. ``fleet_dispatch`` for the own-fleet office
    roles: Mapped[list] = mapped_column(JSON, default=list)
    callback_url: Mapped[str | None] = mapped_column(String(500))
    callback_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="agency")


class ApiKey(Base):
    """An agency credential. Only a SHA-256 of the key is kept; ``prefix`` finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    agency: Mapped[Agency] = relationship(back_populates="keys")


#: ``session.info`` key of the requests intake added in the session's transaction, by id
NEW_REQUESTS = "new_requests"


def new_request(session, request_id: str):
    """The request ``request_id`` if intake made it in ``session``'s transaction (it may not
    be flushed yet: a group commit flushes its requests together), else None.

    Looking here first spares a scan of ``session.new`` (it grows with the group) and a
    query that would flush the group early."""
    return session.info.get(NEW_REQUESTS, {}).get(request_id)


class ServiceRequest(Base):
    """One agency request to a public service, from submission to its end.

    ``pending_job`` names the work still owed to this request (``dispatch``, ...). It is set
    in the same transaction that creates the need and cleared by the job that does the work;
    the sweep re-enqueues whatever is pending but missing from Redis.
    """

    __tablename__ = "service_requests"
    __table_args__ = (
        # Test and live keys are two worlds (gateway.records.owned_by): an Idempotency-Key,
        # an active reference and the listing belong to one agency *and* one key type.
        UniqueConstraint("agency_id", "key_type", "idempotency_key",
                         name="uq_service_requests_key_type_idempotency"),
        Index("ix_service_requests_agency_key_created", "agency_id", "key_type", "created_at",
              "id"),
        Index("ix_service_requests_pending", "pending_job", "pending_since"),
        UniqueConstraint("agency_id", "key_type", "service", "active_reference",
                         name="uq_service_requests_key_type_active_reference"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    #: the API key that made it; None when agency staff made it in the console (the audit
    #: record names the console user)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))
    service: Mapped[str] = mapped_column(String(64), index=True)
    #: ``live`` or ``test``: the type of the key that made it, the world it lives in
    key_type: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(32), index=True)
    external_reference: Mapped[str | None] = mapped_column(String(128), index=True)
    payload_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    correlation_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    #: ``external_reference`` while the request is active, for the per-agency uniqueness rule
    #: of services that ask for it; cleared when the request ends
    active_reference: Mapped[str | None] = mapped_column(String(128))
    #: a limited resource this request holds while active (seats on a departure)
    capacity_key: Mapped[str | None] = mapped_column(String(160), index=True)
    capacity_units: Mapped[int | None] = mapped_column(Integer)
    #: the eligibility decision only: ``{"eligible", "source", "decided_at"}``
    eligibility: Mapped[dict | None] = mapped_column(JSON)
    delivery_pin_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    proof_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: when the courier handed the delivery over, by the courier's own report (its proof or
    #: delivered event time), never the time we processed that report
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when the retention purge removed the personal data (the history stays)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pending_job: Mapped[str | None] = mapped_column(String(32))
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the public tracking page's token (``gateway.links``): its SHA-256 finds the request,
    #: the token itself is sealed so the API and notices can give the link again
    tracking_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    tracking_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: the courier as the provider reported it: first name only, plate, estimated arrival
    courier_first_name: Mapped[str | None] = mapped_column(String(30))
    courier_plate: Mapped[str | None] = mapped_column(String(16))
    courier_eta: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: what the booked courier quoted, and what the provider reported charging, in whole
    #: units of ``cost_currency`` (``gateway.costs``)
    quoted_amount: Mapped[int | None] = mapped_column(BigInteger)
    final_amount: Mapped[int | None] = mapped_column(BigInteger)
    cost_currency: Mapped[str | None] = mapped_column(String(3))
    #: what this request holds against its budgets now (reserved at booking, None once
    #: settled) and the periods of the budgets it reserved from (``2026-12,2026``)
    reserved_amount: Mapped[int | None] = mapped_column(BigInteger)
    budget_periods: Mapped[str | None] = mapped_column(String(15))
    #: who released it from ``held_for_budget`` (it may then go over the budget)
    budget_approved_by: Mapped[str | None] = mapped_column(String(128))
    #: indexed alone for the console, which counts and searches across agencies by time
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    events: Mapped[list[StatusEvent]] = relationship(
        back_populates="request", order_by="StatusEvent.id")


class StatusEvent(Base):
    """One step on a request's timeline. ``applied`` is False for an event that arrived late
    or twice and so changed nothing (statuses move forward only)."""

    __tablename__ = "status_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    raw_status: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[ServiceRequest] = relationship(back_populates="events")


class AuditRecord(Base):
    """One link of the append-only, hash-chained audit trail (see ``gateway.audit``).

    ``recorded_at`` is text so that the hashed form is exactly what is stored, on every engine.
    """

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    recorded_at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's single head row: locked by every append so links are written one at a
    time on every engine, and compared by ``verify`` so a deleted tail is noticed."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class CourierAttempt(Base):
    """One try at one courier for one request, written BEFORE the provider is called.

    ``reference`` is what we send the provider (GO-SEND ``storeOrderId``, Grab
    ``merchantOrderID``): after a crash or a timeout the booking is looked up by it, never
    made again blindly. ``state`` is ``pending`` until the answer is recorded, ``unknown`` when
    the answer never came, then ``booked``, ``no_driver``, ``rejected``, ``temporary``,
    ``auth``, ``not_found`` or ``released`` (a booking we cancelled after failing over).
    """

    __tablename__ = "courier_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), index=True)
    courier: Mapped[str] = mapped_column(String(64))
    attempt_no: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    provider_reference: Mapped[str | None] = mapped_column(String(128), index=True)
    detail: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderEventRecord(Base):
    """The inbox of provider reports (webhooks and polls), deduplicated by ``event_key``.

    Stored before it is processed, so a report is never lost between "answered 200" and
    "applied"; ``processed_at`` stays empty until a job has applied it (the sweep requeues).
    """

    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("courier", "event_key", name="uq_provider_events_courier_key"),
        Index("ix_provider_events_unprocessed", "processed_at", "received_at"),
        # the newest webhook per courier (gateway.reports.webhook_silence)
        Index("ix_provider_events_courier_source_received", "courier", "source",
              "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    courier: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    our_reference: Mapped[str | None] = mapped_column(String(64))
    raw_status: Mapped[str] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    #: sealed: proof of delivery and the like (a receiver's name is personal data)
    details_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)


class ProofImage(Base):
    """One proof-of-delivery image a courier reported for a request (``gateway.proofs``).

    The provider's link expires, so the image is fetched at once and kept here, sealed like
    the request's personal data (``ciphertext``, a recipient's doorstep is personal); the
    link itself is sealed too and dropped once fetched. ``status``: ``pending``, ``stored``,
    or ``failed`` with ``error`` (``expired``, ``refused``, ``not_an_image``, ``too_large``).
    """

    __tablename__ = "proof_images"
    __table_args__ = (UniqueConstraint("request_id", "index",
                                       name="uq_proof_images_request_id_index"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    #: the courier instance that reported it (the source provider)
    courier: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(String(32))
    url_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: sha256 of the link, so the same link reported again (webhook, then polling) is not
    #: fetched twice
    link_digest: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallbackDelivery(Base):
    """The outbox of status callbacks to an agency, written with the status change itself.

    ``id`` is the event id the agency deduplicates by; ``sequence`` (the status event's id)
    lets it order callbacks that arrive out of order after retries.
    """

    __tablename__ = "callback_deliveries"
    __table_args__ = (Index("ix_callback_deliveries_pending", "delivered_at", "gave_up_at",
                            "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), index=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))


class FleetJob(Base):
    """A booking for the regency's own fleet (the Gancang Aron health staff).

    The order staff need to deliver (names, phones, addresses) is sealed like any personal
    data; ``state`` moves ``new`` -> ``accepted`` -> ``picked_up`` -> ``delivered`` (or
    ``cancelled``).
    """

    __tablename__ = "fleet_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    courier: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    order_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), index=True)
    staff_name: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdminUser(Base):
    """A person who signs in to the console: one who runs the gateway (``admin``,
    ``operator``, ``auditor``), or an agency's own staff (``agency_staff``,
    ``agency_manager``), tied to one agency and one type of key (``live`` or ``test``), who
    sees exactly what that agency's key of that type would see.

    Only a salted, slow hash of the password is kept (werkzeug's scrypt).
    """

    __tablename__ = "admin_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="id")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: for agency roles only: the agency and the world (key type) the account sees
    agency_id: Mapped[str | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    key_type: Mapped[str | None] = mapped_column(String(8))


class ConfigVersion(Base):
    """One saved version of a service's or courier's settings, made in the console.

    ``target`` is ``service:<name>`` or ``courier:<instance>``; ``data`` is the whole section
    as the admin saved it, secret references (``{"$env": ...}``) unresolved. The newest
    version of a target replaces its section of the YAML files on every node; a rollback is
    a new version holding an older one's data, so history only grows.
    """

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(140), index=True)
    data: Mapped[dict] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(140))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notice(Base):
    """One notice to a citizen about a request (``gateway.notices``): accepted, courier
    assigned, the PIN, delivered... Written before any job refers to it; sent by a job that
    takes its id. Each try on a channel is a :class:`NoticeMessage`; a notice goes by the
    next channel only after the one before failed or was not delivered in time, so it is
    delivered once.

    The number and the parameters (a first name, a PIN) are personal data: sealed.
    ``phone_digest`` (keyed, ``gateway.crypto.IdentifierDigests``) finds opt-outs.
    ``status``: ``queued`` -> ``held`` (quiet hours) -> ``sending`` -> ``sent`` ->
    ``delivered`` -> ``read``, or ``failed`` (every channel tried), or ``suppressed`` (the
    citizen opted out and the notice is not essential; or no notifier may carry it).
    """

    __tablename__ = "notices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), index=True)
    agency_id: Mapped[str] = mapped_column(String(36))
    key_type: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    essential: Mapped[bool] = mapped_column(Boolean, default=False)
    to_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    phone_digest: Mapped[str] = mapped_column(String(64), index=True)
    params_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: the channel and notifier of the newest try
    channel: Mapped[str | None] = mapped_column(String(16))
    notifier: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    #: what its messages cost, in whole units of ``currency`` (the region's)
    cost: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    #: held until then (quiet hours), UTC
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    #: (also what makes a notice made in its request's own transaction be written after it)
    request: Mapped[ServiceRequest] = relationship()
    messages: Mapped[list[NoticeMessage]] = relationship(
        back_populates="notice", order_by="NoticeMessage.created_at")


class NoticeMessage(Base):
    """One try of a notice on one channel, written BEFORE the notifier is called (its id is
    our reference). ``status``: ``sending`` -> ``sent`` -> ``delivered`` -> ``read``, or
    ``failed``, or ``fell_back`` (the next channel took over); a receipt that arrives after
    the fall-back is kept in ``late_status`` and changes nothing else."""

    __tablename__ = "notice_messages"
    __table_args__ = (
        UniqueConstraint("notifier", "provider_message_id",
                         name="uq_notice_messages_notifier_provider_message_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    notifier: Mapped[str] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    raw_status: Mapped[str | None] = mapped_column(String(32))
    late_status: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(64))
    cost: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    notice: Mapped[Notice] = relationship(back_populates="messages")


class NoticeOptOut(Base):
    """A phone number that replied STOP, by its keyed digest (never the number): it gets no
    more non-essential notices."""

    __tablename__ = "notice_opt_outs"

    phone_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    notifier: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyAnswer(Base):
    """One citizen's answer to the satisfaction survey (SKM, ``gateway.skm``) about one
    request: the nine elements (``u1``..``u9``) on the 1-4 scale. One per request, by the
    unique ``request_id`` (a second or concurrent submit is refused by the database).

    The comment and the complaint are free text a citizen may fill with personal data:
    sealed. ``agency_id``, ``service`` and ``key_type`` are copied from the request so the
    console's figures group without a join."""

    __tablename__ = "survey_answers"
    __table_args__ = (Index("ix_survey_answers_service_created", "service", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), unique=True)
    agency_id: Mapped[str] = mapped_column(String(36), index=True)
    service: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8))
    u1: Mapped[int] = mapped_column(Integer)
    u2: Mapped[int] = mapped_column(Integer)
    u3: Mapped[int] = mapped_column(Integer)
    u4: Mapped[int] = mapped_column(Integer)
    u5: Mapped[int] = mapped_column(Integer)
    u6: Mapped[int] = mapped_column(Integer)
    u7: Mapped[int] = mapped_column(Integer)
    u8: Mapped[int] = mapped_column(Integer)
    u9: Mapped[int] = mapped_column(Integer)
    comment_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    complaint_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    has_complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
class DeliveryQuote(Base):
    """One quote asked of one courier before booking a request (``gateway.costs``): its
    amount, or why there is none (``outcome``: ``ok``, ``not_serviceable``, ``failed``).
    ``chosen`` marks the quote of the courier that booked it."""

    __tablename__ = "delivery_quotes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("service_requests.id"), index=True)
    courier: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    distance_m: Mapped[int | None] = mapped_column(Integer)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(String(200))
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Budget(Base):
    """What an agency may spend on one service in one period (``period``: ``YYYY`` for a
    year, ``YYYY-MM`` for a month, the region's calendar), and what is ``reserved`` (quotes of
    booked requests not yet settled) and ``spent`` (final prices). Amounts are whole units of
    ``currency``. Reservations change these rows only by one conditional UPDATE each
    (``gateway.costs.reserve``), so two requests can never both take the last of a budget."""

    __tablename__ = "budgets"
    __table_args__ = (
        UniqueConstraint("agency_id", "service", "period",
                         name="uq_budgets_agency_service_period"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    service: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    limit_amount: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Upload(Base):
    """A spreadsheet of requests an agency uploaded (``gateway.uploads``): its rows, read
    into request bodies and sealed (they hold patients' names and NIKs), and where their
    preview and their creation stand. ``status``: ``previewing`` -> ``previewed`` ->
    ``creating`` -> ``done`` (or ``unreadable`` when not one row could be read)."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_agency_created", "agency_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    service: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(8))
    #: who uploaded it: the console account's id (the audit names it too)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(200))
    file_kind: Mapped[str] = mapped_column(String(8))        # csv | xlsx
    status: Mapped[str] = mapped_column(String(16))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: rows looked at by the job running now (the progress bar)
    done_rows: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_rows: Mapped[int] = mapped_column(Integer, default=0)
    replayed_rows: Mapped[int] = mapped_column(Integer, default=0)
    failed_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: ``[{"row": n, "body": {...}}, ...]``, sealed with the vault
    rows_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UploadRow(Base):
    """One row of an upload: its preview (``valid`` or ``invalid`` with its errors), then
    what creating it did (``created``, ``replayed``: the request already existed, or
    ``failed`` with the intake's error). Errors hold intake's codes, messages and field
    paths, never the row's values."""

    __tablename__ = "upload_rows"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[dict | None] = mapped_column(JSON)
