"""Notices to citizens: what to say, to whom, when, by which channel, and once.

A notice is a templated message about a request (``accepted``, ``courier_assigned``, ``pin``,
``delivered``, ``failed``) to one phone number. The flow keeps the gateway's rules:

* **persist, then enqueue**: :func:`queue_notice` writes the :class:`~gateway.models.Notice`
  (number and parameters sealed) in the caller's transaction and, once that commits, has its
  agency's turns job (:func:`give_turns`) hand it a token and enqueue its ``notice`` job,
  which takes the notice's id and nothing else;
* **one delivery per notice**: each try on a channel is a
  :class:`~gateway.models.NoticeMessage`, written before the notifier is called; the next
  channel (SMS after WhatsApp, ``notices.channels``) is tried only after the message before
  it *failed* or was not delivered within ``notices.fallback_after_seconds``, and that
  message is then marked ``fell_back`` in the same transaction. A receipt that arrives for a
  message that fell back is recorded (``late_status``, the timeline) and sends nothing. A
  send whose answer was lost is never repeated on its channel: its receipt or the deadline
  decides;
* **opt-out**: a citizen who replies STOP (WhatsApp's inbound webhook; SMS where the channel
  is two-way) is recorded by the keyed digest of the number, and gets no more notices that
  are not *essential*. Essential (:data:`ESSENTIAL`): the handover PIN and the notice that a
  request failed, without which the citizen cannot receive the service or learn that it is
  not coming. ``START`` opts back in;
* **quiet hours** (``notices.quiet_hours``, the region's local time): a notice that is not
  urgent is held until they end;
* **a per-agency rate** (``notices.rate_limit``): the API's token bucket
  (``gateway.ratelimit``) under a key of its own; a notice waits in the database for its
  turn, which one job per agency hands out as tokens come (:func:`give_turns`): a line of
  thousands costs no job per notice, and nothing in Redis;
* **cost**: each message records its notifier's ``cost`` (``notifiers.yaml``) in the region's
  currency, summed on the notice;
* **test keys never reach the world**: a notice of a request made with a test key, or any in
  ``mode: sandbox``, goes only by ``sandbox`` notifiers (simulators), as couriers.

**What makes a notice** (:func:`track_event`): a request's creation (``accepted``, with
the tracking link) and each status that applies (:data:`STATUS_NOTICES`: the courier's first
name and plate, the PIN by the service's ``pin_recipient``, ``delivered`` with the survey
link, ``failed`` with the sending office's phone), each kind at most once per request,
whoever replays the event. Who gets them and in which language the service says
(:meth:`gateway.services.Service.notice_contacts`).

Every change is an event on the request's timeline (``notice_sent``, ``notice_delivered``,
``notice_read``, ``notice_failed``, ``notice_fell_back``...; ``applied`` false: a notice does
not move the request) and an audit record without personal data.

**Templates** (:data:`TEMPLATES`) are keyed by (kind, language), in Indonesian and English,
with named parameters drawn only from :data:`ALLOWED_PARAMETERS`: there is no parameter for
a drug name, a diagnosis, a NIK or an address, so no template can say one, and each value is
checked (:func:`check_parameters`). This module must never log a number, a parameter or a
message's text.
"""

from __future__ import annotations

import contextlib
import logging
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from redis.exceptions import LockError, RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from . import phones
from .db import gathered_after_commit, insert_at_commit
from .events import Event
from .hookspecs import hookimpl
from .models import (
    Agency,
    Notice,
    NoticeMessage,
    NoticeOptOut,
    ServiceRequest,
    StatusEvent,
    new_id,
    new_request,
    utcnow,
)
from .notifiers import (
    RECEIPT_RANKS,
    InboundMessage,
    NotifierError,
    OutgoingMessage,
    Receipt,
)
from .queues import enqueue_after_commit, enqueue_job, job_id, request_lock
from .settings import NOTICE_KINDS

log = logging.getLogger(__name__)

#: notices an opt-out does not stop (see the module docstring)
ESSENTIAL = frozenset({"pin", "failed"})
#: replies that opt out, and back in (Indonesian and English)
STOP_WORDS = frozenset({"STOP", "BERHENTI", "UNSUBSCRIBE", "STOPALL", "CANCEL"})
START_WORDS = frozenset({"START", "MULAI", "UNSTOP"})
CHANNEL_NAMES = {"whatsapp": "WhatsApp", "sms": "SMS"}
#: the ``source`` of a notice's events on its request's timeline
TIMELINE_SOURCE = "notices"
#: how long a notice is looked after (its receipts waited for, its lost jobs swept up)
PATIENCE = timedelta(days=1)
#: the statuses of a notice that still has work owed
OPEN_STATUSES = ("queued", "held", "sending", "sent")


class NoticeError(ValueError):
    """A notice that cannot be made as asked (an unknown kind, a parameter that is missing,
    not allowed, or not of its shape). A programming error of the caller, never the
    citizen's: the message names the parameter, never its value."""


class NoticeRetry(Exception):
    """Send the notice again later (rq's retries): nothing was sent."""


# -- templates -------------------------------------------------------------------------------
#: every parameter a template may name, with the shape of its value. Nothing else exists:
#: no drug, diagnosis, NIK or address can be asked for.
ALLOWED_PARAMETERS = {
    "first_name": re.compile(r"[^\W\d_][\w'./-]{0,29}"),
    "service": re.compile(r"[^\d\n]{1,60}"),
    "office": re.compile(r"[^\n]{1,80}"),
    "office_phone": re.compile(r"\+?[0-9 ()-]{5,20}"),
    "courier_name": re.compile(r"[^\W\d_][\w'.-]{0,29}"),
    "plate": re.compile(r"[A-Z]{1,2} ?\d{1,4} ?[A-Z]{0,3}"),
    "pin": re.compile(r"\d{4,8}"),
    "tracking_url": re.compile(r"https?://[^\s]{1,200}"),
    "survey_url": re.compile(r"https?://[^\s]{1,200}"),
}


@dataclass(frozen=True)
class NoticeTemplate:
    """``name`` is the template as approved with the provider (WhatsApp); ``text`` the body
    with ``{parameter}`` placeholders (SMS, and what WhatsApp's approved text says)."""

    kind: str
    language: str
    name: str
    text: str

    @property
    def parameters(self) -> tuple[str, ...]:
        """The placeholders, in order of appearance (WhatsApp's ``{{1}}``, ``{{2}}``...)."""
        found = [f for _, f, _, _ in string.Formatter().parse(self.text) if f]
        return tuple(dict.fromkeys(found))

    def render(self, values: dict[str, str]) -> str:
        return self.text.format(**values)


TEMPLATES: dict[tuple[str, str], NoticeTemplate] = {}


def register_template(kind: str, language: str, name: str, text: str) -> NoticeTemplate:
    """Add a template to the registry.

    :raises NoticeError: an unknown kind, or a placeholder that is not an allowed parameter
    """
    if kind not in NOTICE_KINDS:
        raise NoticeError(f"unknown notice kind {kind!r}")
    template = NoticeTemplate(kind, language, name, text)
    unknown = [p for p in template.parameters if p not in ALLOWED_PARAMETERS]
    if unknown:
        raise NoticeError(f"template {name!r} names parameters that are not allowed: "
                          f"{', '.join(unknown)}")
    TEMPLATES[kind, language] = template
    return template


for _kind, _language, _name, _text in (
    ("accepted", "id", "layanan_diterima_id",
     "Halo {first_name}, permintaan {service} Anda sudah kami terima dan sedang kami "
     "siapkan. Kami kabari lagi saat kurir berangkat. Ikuti perjalanannya: {tracking_url}"),
    ("accepted", "en", "layanan_diterima_en",
     "Hello {first_name}, we have received your {service} request and are preparing it. "
     "We will tell you when the courier sets off. Follow it here: {tracking_url}"),
    ("courier_assigned", "id", "kurir_ditugaskan_id",
     "Halo {first_name}, kurir {courier_name} ({plate}) sedang menuju Anda untuk "
     "{service}."),
    ("courier_assigned", "en", "kurir_ditugaskan_en",
     "Hello {first_name}, courier {courier_name} ({plate}) is on the way to you for "
     "{service}."),
    ("pin", "id", "pin_serah_terima_id",
     "Kode serah terima {service} Anda: {pin}. Berikan kode ini hanya kepada kurir saat "
     "paket diterima."),
    ("pin", "en", "pin_serah_terima_en",
     "Your {service} handover code: {pin}. Give it only to the courier when you receive "
     "the package."),
    ("delivered", "id", "layanan_terkirim_id",
     "Halo {first_name}, {service} Anda sudah diterima. Terima kasih. Mohon isi survei "
     "kepuasan singkat: {survey_url}"),
    ("delivered", "en", "layanan_terkirim_en",
     "Hello {first_name}, your {service} has been delivered. Thank you. Please answer a "
     "short satisfaction survey: {survey_url}"),
    ("failed", "id", "layanan_gagal_id",
     "Mohon maaf {first_name}, {service} Anda belum dapat diantar. Petugas {office} akan "
     "menghubungi Anda untuk mengatur pengantaran ulang atau pengambilan. Anda juga dapat "
     "menghubungi {office_phone}."),
    ("failed", "en", "layanan_gagal_en",
     "Sorry {first_name}, your {service} could not be delivered. {office} will contact you "
     "to arrange a new delivery or a pickup. You can also call {office_phone}."),
):
    register_template(_kind, _language, _name, _text)


def template_for(kind: str, language: str, fallback: str) -> NoticeTemplate:
    """The template of ``kind`` in ``language``, else in ``fallback`` (the region's), else
    Indonesian.

    :raises NoticeError: no template of that kind
    """
    for candidate in (language, fallback, "id"):
        found = TEMPLATES.get((kind, candidate))
        if found is not None:
            return found
    raise NoticeError(f"no template for notice kind {kind!r}")


def check_parameters(template: NoticeTemplate, params: dict) -> dict[str, str]:
    """Exactly the template's parameters, each of its allowed shape.

    :raises NoticeError: naming the parameter (never its value)
    """
    wanted = set(template.parameters)
    extra = sorted(set(params) - wanted)
    if extra:
        raise NoticeError(f"parameters not in template {template.name!r}: {', '.join(extra)}")
    values = {}
    for name in template.parameters:
        value = params.get(name)
        if not isinstance(value, str) or not ALLOWED_PARAMETERS[name].fullmatch(value):
            raise NoticeError(f"parameter {name!r} is missing or not of its shape")
        values[name] = value
    return values


# -- quiet hours -------------------------------------------------------------------------------
def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def held_until(region, quiet: dict | None, now: datetime) -> datetime | None:
    """When quiet hours that hold ``now`` end (UTC), or None when ``now`` is not in them.
    Quiet hours are the region's local time and may run over midnight (21:00-07:00)."""
    if not quiet:
        return None
    start, end = _clock(quiet["start"]), _clock(quiet["end"])
    if start == end:
        return None
    local = region.local(now)
    clock = local.time().replace(tzinfo=None)
    overnight = start > end
    quiet_now = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not quiet_now:
        return None
    day = local.date() + timedelta(days=1) if overnight and clock >= start else local.date()
    return datetime.combine(day, end, tzinfo=region.time_zone).astimezone(UTC)


# -- making a notice ---------------------------------------------------------------------------
#: ``session.info`` key: the kinds of notice made in the transaction for each request made in
#: it (their rows are gathered, not ORM objects to look through)
NEW_NOTICE_KINDS = "new_notice_kinds"


def notifiers_for(gateway, key_type: str) -> list:
    """The notifiers a notice of a request made with a ``key_type`` key may go by, in the
    configured channel order: sandbox ones only for a test key or in ``mode: sandbox``."""
    live_allowed = key_type == "live" and gateway.settings["mode"] == "live"
    usable = [n for n in gateway.notifiers.values() if n.sandbox or live_allowed]
    order = gateway.settings["notices"]["channels"]
    return sorted((n for n in usable if n.channel in order),
                  key=lambda n: (order.index(n.channel), n.sandbox, n.instance))


def opted_out(session, gateway, phone: str) -> bool:
    digests = gateway.identifiers.digests(phone)
    return session.scalar(select(NoticeOptOut.phone_digest).where(
        NoticeOptOut.phone_digest.in_(digests))) is not None


def queue_notice(gateway, session, request: ServiceRequest, kind: str, params: dict, *,
                 to: str, urgent: bool = False, language: str | None = None
                 ) -> Notice | None:
    """Make a notice about ``request`` in the caller's transaction; it joins its agency's
    line once that commits (:func:`give_turns`). The entry point for every notice.

    :param kind: one of :data:`gateway.settings.NOTICE_KINDS`
    :param params: the template's named parameters (see :data:`ALLOWED_PARAMETERS`)
    :param to: the citizen's mobile number (any form ``gateway.phones`` reads)
    :param urgent: sent even in quiet hours (the PIN when the courier is at the door)
    :param language: ``id`` or ``en``; default the region's language
    :return: the notice, or None when no notifier may carry it (none configured)
    :raises NoticeError: an unknown kind or parameters the template does not take
    """
    template = template_for(kind, language or gateway.region.locale, gateway.region.locale)
    values = check_parameters(template, params)
    if not notifiers_for(gateway, request.key_type):
        return None
    phone = phones.e164(to)
    now = utcnow()
    notice = Notice(
        id=new_id(), request_id=request.id, agency_id=request.agency_id,
        key_type=request.key_type,
        kind=kind, template=template.name, language=template.language, urgent=urgent,
        essential=kind in ESSENTIAL, to_ciphertext=gateway.vault.seal(phone),
        phone_digest=gateway.identifiers.digest(phone),
        params_ciphertext=gateway.vault.seal(values), status="queued",
        currency=gateway.region.currency, cost=0, created_at=now, updated_at=now)
    if new_request(session, request.id) is request:
        # a request made in this transaction is a plain row written at the commit; its
        # notice is one too, after it
        insert_at_commit(session, Notice.__table__, notice)
        session.info.setdefault(NEW_NOTICE_KINDS, {}).setdefault(request.id, set()).add(kind)
    else:
        notice.request = request    # written after its request if that is new too
        session.add(notice)
    _timeline(gateway, session, request, notice, "queued")
    # in its agency's line: the turns job hands it a token and queues its send job
    _turns_after_commit(gateway, session, notice.agency_id)
    return notice


def _timeline(gateway, session, request: ServiceRequest, notice: Notice, what: str,
              channel: str | None = None, detail: str | None = None) -> None:
    """A notice's change on its request's timeline (``applied`` false: the request's status
    does not move) and in the audit trail, with no personal data."""
    by = f" by {CHANNEL_NAMES.get(channel, channel)}" if channel else ""
    step = {"request_id": request.id, "status": request.status, "raw_status": f"notice_{what}",
            "source": TIMELINE_SOURCE, "applied": False, "created_at": utcnow(),
            "detail": detail or f"{notice.kind} notice {what.replace('_', ' ')}{by}"}
    if new_request(session, request.id) is request:
        # a request made in this transaction: its steps are all plain rows, in order
        insert_at_commit(session, StatusEvent.__table__, step)
    else:
        session.add(StatusEvent(**step))
    gateway.track(session, Event(f"notice.{what}", actor="notices",
                                 target=f"request:{request.id}",
                                 details={"notice": notice.id, "kind": notice.kind,
                                          "channel": channel, "notifier": notice.notifier},
                                 correlation_id=request.correlation_id))


# -- sending -----------------------------------------------------------------------------------
def advance_notice(gateway, notice_id: str, now: datetime | None = None, *,
                   last_try: bool = True) -> str:
    """Do what is due for a notice: send it (first channel, or the next after a failure or
    the fallback deadline), hold it (quiet hours, the agency's rate), or nothing. Runs under
    a lock per notice, so two jobs never decide for one notice at once.

    :param last_try: no retry of the job is left: a notifier that sent nothing because of a
        temporary trouble (an outage, its rate) is then given up for the next channel
    :return: the outcome, for the job's log
    :raises NoticeRetry: nothing was sent, try later (rq's retries)
    """
    lock = request_lock(gateway, "notice", notice_id)
    if not lock.acquire(blocking=False):
        return "busy"
    try:
        return _advance(gateway, notice_id, now or utcnow(), last_try)
    finally:
        with contextlib.suppress(LockError, RedisError):
            lock.release()


def _advance(gateway, notice_id: str, now: datetime, last_try: bool = True) -> str:
    settings = gateway.settings["notices"]
    with gateway.db.write() as session:
        # locked: a receipt for its message waits until the decision is written
        notice = session.get(Notice, notice_id, with_for_update=True)
        if notice is None or notice.status in ("delivered", "read", "failed", "suppressed"):
            return "nothing owed"
        request = session.get(ServiceRequest, notice.request_id)
        current = notice.messages[-1] if notice.messages else None
        if current is not None:
            if current.status in ("delivered", "read"):
                return "delivered"
            deadline = (current.sent_at or current.created_at) + timedelta(
                seconds=settings["fallback_after_seconds"])
            if current.status != "failed" and now < deadline:
                _wake_at(gateway, notice.id, deadline, now)
                return "waiting for a receipt"
        else:
            phone = gateway.vault.open(notice.to_ciphertext)
            if not notice.essential and opted_out(session, gateway, phone):
                notice.status, notice.updated_at = "suppressed", now
                _timeline(gateway, session, request, notice, "suppressed",
                          detail=f"{notice.kind} notice not sent: the citizen opted out")
                return "opted out"
            if not notice.urgent:
                until = notice.not_before or held_until(gateway.region,
                                                        settings["quiet_hours"], now)
                if until is not None and until > now:
                    if notice.status != "held":
                        notice.status, notice.not_before, notice.updated_at = \
                            "held", until, now
                        _timeline(gateway, session, request, notice, "held",
                                  detail=f"{notice.kind} notice held for quiet hours")
                    _wake_at(gateway, notice.id, until, now)
                    return "held"
            if not _take_turn(gateway, notice.id):
                wait = gateway.notice_limiter.check(notice.agency_id, "notice")
                if wait is not None:
                    if notice.status == "held":         # its quiet hours are over
                        notice.status, notice.updated_at = "queued", now
                    _turns_at(gateway, notice.agency_id, wait)
                    return "rate limited"
        tried = {m.notifier for m in notice.messages}
        candidates = [n for n in notifiers_for(gateway, notice.key_type)
                      if n.instance not in tried]
        if current is not None:
            # the next channel only: never a second notifier of the same channel, which
            # could deliver the same notice twice to one app
            candidates = [n for n in candidates if n.channel != current.channel]
        if not candidates:
            if current is not None and current.status != "failed":
                # the last channel: its receipt may still come; looked at again while the
                # notice is looked after, so the sweep finds its job alive
                if now - notice.created_at < PATIENCE:
                    _wake_at(gateway, notice.id, now + timedelta(
                        seconds=settings["fallback_after_seconds"]), now)
                return "waiting for a receipt"
            notice.status, notice.updated_at = "failed", now
            _timeline(gateway, session, request, notice, "failed",
                      detail=f"{notice.kind} notice failed on every channel")
            return "failed"
        notifier = candidates[0]
        if current is not None:
            current.status, current.updated_at = "fell_back", now
            _timeline(gateway, session, request, notice, "fell_back",
                      detail=f"{notice.kind} notice fell back from "
                      f"{CHANNEL_NAMES.get(current.channel, current.channel)} to "
                      f"{CHANNEL_NAMES.get(notifier.channel, notifier.channel)}")
        message = NoticeMessage(notice_id=notice.id, channel=notifier.channel,
                                notifier=notifier.instance, status="sending", cost=0,
                                created_at=now, updated_at=now)
        session.add(message)
        notice.status, notice.channel, notice.notifier = "sending", notifier.channel, \
            notifier.instance
        notice.updated_at = now
        session.flush()
        message_id = message.id
        template = template_for(notice.kind, notice.language, notice.language)
        values = gateway.vault.open(notice.params_ciphertext)
        outgoing = OutgoingMessage(
            to=gateway.vault.open(notice.to_ciphertext), template=template.name,
            language=template.language,
            parameters=tuple(values[p] for p in template.parameters),
            text=template.render(values), reference=message_id)
    # written; now the call, outside any transaction
    try:
        sent = notifier.send(outgoing)
    except NotifierError as exc:
        return _record_failure(gateway, notice_id, message_id, exc, now, last_try)
    with gateway.db.write() as session:
        message = session.get(NoticeMessage, message_id)
        notice = session.get(Notice, notice_id)
        request = session.get(ServiceRequest, notice.request_id)
        cost = notifier.cost()
        message.provider_message_id = sent.provider_message_id
        message.status = "sent" if message.status == "sending" else message.status
        message.raw_status, message.sent_at, message.cost = sent.status, now, cost
        message.updated_at = now
        notice.provider_message_id = sent.provider_message_id
        notice.cost = (notice.cost or 0) + cost
        if notice.status == "sending":
            notice.status = "sent"
        notice.updated_at = now
        _timeline(gateway, session, request, notice, "sent", notifier.channel)
    _wake_at(gateway, notice_id, now + timedelta(seconds=settings["fallback_after_seconds"]),
             now)
    return "sent"


def _record_failure(gateway, notice_id: str, message_id: str, exc: NotifierError,
                    now: datetime, last_try: bool = True) -> str:
    """What a notifier's error leaves: nothing sent (retry later, the message row gone; on
    the last try, the next channel), an unknown outcome (wait for its receipt or the
    deadline), or a refusal (the next channel)."""
    retry = exc.retry and not last_try
    fall_back = exc.fall_back or (exc.retry and last_try)
    with gateway.db.write() as session:
        message = session.get(NoticeMessage, message_id)
        notice = session.get(Notice, notice_id)
        request = session.get(ServiceRequest, notice.request_id)
        if retry:
            session.delete(message)
            notice.status = "queued"
        else:
            message.error = exc.outcome
            message.updated_at = now
            if fall_back:
                message.status, message.failed_at = "failed", now
                _timeline(gateway, session, request, notice, "failed", message.channel,
                          detail=f"{notice.kind} notice refused by "
                          f"{CHANNEL_NAMES.get(message.channel, message.channel)} "
                          f"({exc.outcome})")
            else:
                message.sent_at = now      # it may be on its way: the deadline counts
    if retry:
        raise NoticeRetry(f"notifier {exc.outcome}") from exc
    if fall_back:
        # the next channel's try comes after this one: a notice's messages are ordered by
        # their creation time, which must not tie with the one refused
        return _advance(gateway, notice_id, now + timedelta(microseconds=1), last_try)
    _wake_at(gateway, notice_id, now + timedelta(
        seconds=gateway.settings["notices"]["fallback_after_seconds"]), now)
    return "outcome unknown"


# -- an agency's line -------------------------------------------------------------------------
#: notices one turns job looks at in a run (oldest first)
LINE_WINDOW = 200
#: how long a turn given to a notice waits for its send job
TURN_SECONDS = 120


def _turn_key(notice_id: str) -> str:
    return f"gateway:notice-turn:{notice_id}"


def _take_turn(gateway, notice_id: str) -> bool:
    """Was this notice given its agency's token by :func:`give_turns`? It is used up now."""
    try:
        return bool(gateway.redis.delete(_turn_key(notice_id)))
    except RedisError:
        return False


def _turns_at(gateway, agency_id: str, wait: float) -> None:
    """Have the agency's turns job (:func:`give_turns`) run when its next token exists
    (nothing if it is queued already); if Redis is away, the sweep queues it."""
    try:
        enqueue_job(gateway, "notice_turns", agency_id, delay=wait)
    except RedisError:
        log.warning("agency %s: could not schedule its notices' turns", agency_id)


def give_turns(gateway, agency_id: str) -> str:
    """Hand an agency's tokens (``notices.rate_limit``) to its queued notices, oldest
    first, and queue their send jobs; then come back when the next token exists.

    A notice waits in the database (``queued``) and holds nothing in Redis: however long the
    line, it costs one job when its turn comes, not a job to find it over the rate nor one
    per look (waiters that each looked again would wake together to find one token between
    them, and all but one would go back to sleep). A new notice runs this job (or finds it
    queued) once its transaction commits; one that raced a run finishing, the sweep
    finds. A turn is a token taken for one notice
    (a Redis key its send job uses up, :func:`_take_turn`); one whose send job never ran
    expires after ``TURN_SECONDS`` and the notice waits for another.
    """
    since = utcnow() - PATIENCE
    with gateway.db.read() as session:
        line = list(session.scalars(
            select(Notice.id).where(Notice.agency_id == agency_id, Notice.status == "queued",
                                    Notice.created_at >= since)
            .order_by(Notice.created_at, Notice.id).limit(LINE_WINDOW)))
    if not line:
        return "nobody waiting"
    pipe = gateway.redis.pipeline(transaction=False)
    for notice_id in line:
        pipe.exists(_turn_key(notice_id))
    waiting = [n for n, holds in zip(line, pipe.execute(), strict=True) if not holds]
    given = 0
    for notice_id in waiting:
        wait = gateway.notice_limiter.check(agency_id, "notice")
        if wait is not None:
            enqueue_job(gateway, "notice_turns_later", agency_id, delay=wait)
            return f"{given} given, the next in {wait:.1f} s"
        gateway.redis.set(_turn_key(notice_id), "1", ex=TURN_SECONDS)
        enqueue_job(gateway, "notice", notice_id)
        given += 1
    if len(line) == LINE_WINDOW:
        # more wait beyond those in sight: look again once their send jobs had time to run
        enqueue_job(gateway, "notice_turns_later", agency_id, delay=1 if given else 5)
    return f"{given} given"


def _turns_after_commit(gateway, session, agency_id: str) -> None:
    """Have the agency's turns job look at its line once ``session`` has committed (one
    look per agency and transaction, however many notices it made)."""
    gathered_after_commit(session, "notice_turns_after_commit", lambda agencies: [
        _turns_at(gateway, agency, 0) for agency in sorted(set(agencies))]).append(agency_id)


def _wake_at(gateway, notice_id: str, when: datetime, now: datetime) -> None:
    """Look at the notice again at ``when`` (rq's scheduler, which ``gateway worker`` runs)."""
    try:
        enqueue_job(gateway, "notice_later", notice_id,
                    delay=max((when - now).total_seconds(), 0.001))
    except RedisError:
        log.warning("notice %s: could not schedule its next look", notice_id)


# -- receipts and replies ------------------------------------------------------------------------
def apply_receipts(gateway, notifier: str, receipts: list[Receipt]) -> dict[str, int]:
    """Apply verified receipts from ``notifier``: each moves its message forward only (a
    replay or a late one changes nothing); a receipt for a message that fell back is kept
    as ``late_status`` and sends nothing; a ``failed`` one sends the notice by the next
    channel. A receipt that names no message *of this notifier* is ignored.

    :return: counts by outcome
    """
    counts = {"applied": 0, "ignored": 0, "late": 0}
    fall_back: list[str] = []
    settled: list[str] = []
    now = utcnow()
    with gateway.db.write() as session:
        for receipt in receipts:
            message = session.scalar(select(NoticeMessage).where(
                NoticeMessage.notifier == notifier,
                NoticeMessage.provider_message_id == receipt.provider_message_id))
            if message is None and receipt.our_reference:
                # a send whose answer was lost: its receipt names our reference
                message = session.scalar(select(NoticeMessage).where(
                    NoticeMessage.notifier == notifier,
                    NoticeMessage.id == receipt.our_reference,
                    NoticeMessage.provider_message_id.is_(None)))
                if message is not None:
                    message.provider_message_id = receipt.provider_message_id[:128]
            if message is None or receipt.status is None:
                counts["ignored"] += 1
                continue
            notice = session.get(Notice, message.notice_id, with_for_update=True)
            session.refresh(message)     # as the notice's decision left it
            if notice.provider_message_id is None and message.status != "fell_back":
                notice.provider_message_id = message.provider_message_id
            request = session.get(ServiceRequest, notice.request_id)
            new_rank = RECEIPT_RANKS[receipt.status]
            if message.status == "fell_back":
                if new_rank > RECEIPT_RANKS.get(message.late_status or "sending", 0):
                    message.late_status, message.updated_at = receipt.status, now
                    _stamp(message, receipt.status, now)
                    _timeline(gateway, session, request, notice, f"late_{receipt.status}",
                              message.channel,
                              detail=f"{notice.kind} notice {receipt.status} by "
                              f"{CHANNEL_NAMES.get(message.channel, message.channel)} after "
                              "it fell back (nothing sent again)")
                    counts["late"] += 1
                else:
                    counts["ignored"] += 1
                continue
            if new_rank <= RECEIPT_RANKS.get(message.status, 0):
                counts["ignored"] += 1
                continue
            message.status, message.raw_status, message.updated_at = \
                receipt.status, receipt.raw_status[:32], now
            if receipt.error:
                message.error = receipt.error[:64]
            _stamp(message, receipt.status, now)
            if receipt.status in ("delivered", "read"):
                notice.status = receipt.status
                settled.append(notice.id)
            notice.updated_at = now
            _timeline(gateway, session, request, notice, receipt.status, message.channel)
            if receipt.status == "failed":
                fall_back.append(notice.id)
            counts["applied"] += 1
        for notice_id in fall_back:
            enqueue_after_commit(gateway, session, "notice", notice_id)
        if settled:
            session.info.setdefault("after_commit", []).append(
                lambda: _forget_deadlines(gateway, settled))
    return counts


def _forget_deadlines(gateway, notice_ids: list[str]) -> None:
    """A delivered notice needs no look at its fallback deadline: the job scheduled for it
    goes (Redis holds only notices still in flight). A look that runs anyway finds the
    notice delivered and does nothing."""
    for notice_id in notice_ids:
        with contextlib.suppress(RedisError, NoSuchJobError):
            job = Job.fetch(job_id("notice_later", notice_id), connection=gateway.redis)
            if job.get_status(refresh=False) == JobStatus.SCHEDULED:
                job.delete()


def _stamp(message: NoticeMessage, status: str, now: datetime) -> None:
    column = {"delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}.get(
        status)
    if column and getattr(message, column) is None:
        setattr(message, column, now)


def apply_inbound(gateway, notifier: str, messages: list[InboundMessage]) -> int:
    """Record STOP (and START) replies, by the keyed digest of the sender's number; other
    text is not kept. :return: how many changed an opt-out"""
    changed = 0
    with gateway.db.write() as session:
        for inbound in messages:
            word = inbound.text.strip().upper()
            if word not in STOP_WORDS | START_WORDS:
                continue
            try:
                phone = phones.e164(inbound.sender)
            except phones.InvalidPhoneNumber:
                continue
            digests = gateway.identifiers.digests(phone)
            existing = session.scalars(select(NoticeOptOut).where(
                NoticeOptOut.phone_digest.in_(digests))).all()
            if word in STOP_WORDS and not existing:
                session.add(NoticeOptOut(phone_digest=digests[0], notifier=notifier,
                                         created_at=utcnow()))
                action = "notice.opt_out"
            elif word in START_WORDS and existing:
                for row in existing:
                    session.delete(row)
                action = "notice.opt_in"
            else:
                continue
            session.flush()
            gateway.track(session, Event(action, actor=f"notifier:{notifier}",
                                         details={"notifier": notifier}))
            changed += 1
    return changed


# -- the dispatcher: notices a request's status changes make -----------------------------------
#: the notices each applied status makes, in order (a status the request skips past still
#: makes its notices at the next one: a courier may report ``picked_up`` without
#: ``driver_assigned``). ``pin`` goes by the service's ``pin_recipient``, the others by its
#: ``notices`` list. ``cancelled`` makes none: the agency cancelled, and tells the citizen.
STATUS_NOTICES = {
    "driver_assigned": ("courier_assigned", "pin"),
    "picked_up": ("courier_assigned", "pin"),
    "delivered": ("delivered",),
    "failed": ("failed",),
    "returned": ("failed",),
    "no_driver": ("failed",),
}


@hookimpl
def track_event(gateway, event, session):
    """The notices a request's changes make: ``accepted`` when it is created
    (``request.create``), then at each status that applies (``request.status`` with
    outcome ``applied``, :data:`STATUS_NOTICES`). Each kind at most once per request: a
    replayed or repeated event finds the notice already made and makes none.

    Who gets them, in which language, and the office a failed notice names come from the
    service (:meth:`gateway.services.Service.notice_contacts`), so the core names no
    service. A failure here is logged and never fails the request or its status change."""
    if not gateway.notifiers:
        return
    if event.action == "request.create":
        kinds = ("accepted",)
    elif event.action == "request.status" and event.outcome == "applied":
        kinds = STATUS_NOTICES.get((event.details or {}).get("to"), ())
    elif event.action == "provider.event" and event.target:
        # a report that names the courier after its status came (GO-SEND's plate comes
        # with the status answer, not the webhook): the courier notice, if still owed
        kinds = ("courier_assigned",)
    else:
        return
    if not kinds:
        return
    request_id = (event.target or "").removeprefix("request:")
    record = new_request(session, request_id) or session.get(ServiceRequest, request_id)
    if record is None or record.payload_ciphertext is None:
        return
    if event.action == "provider.event" and record.status not in ("driver_assigned",
                                                                  "picked_up"):
        return
    settings = gateway.service_settings(record.service)
    wanted = [k for k in kinds if _wanted(k, settings, record)]
    if not wanted:
        return
    try:
        plan_notices(gateway, session, record, wanted)
    except Exception as exc:   # a notice must never cost the citizen the request
        log.warning("notices %s not queued for request %s: %s", ",".join(wanted), request_id,
                    type(exc).__name__)


def _wanted(kind: str, settings: dict, record: ServiceRequest) -> bool:
    if kind == "pin":
        return record.delivery_pin_ciphertext is not None \
            and settings.get("pin_recipient", "patient") in ("patient", "both")
    return kind in settings.get("notices", [])


def plan_notices(gateway, session, record: ServiceRequest, kinds) -> list[Notice]:
    """Queue the notices of ``kinds`` about ``record`` that it has not had yet, in the
    caller's transaction. A kind whose facts are not known yet (a courier with no name or
    plate reported) is left for a later status.

    :return: the notices queued
    """
    if new_request(session, record.id) is record:
        # made in this transaction: only this transaction can have made its notices
        made = set(session.info.get(NEW_NOTICE_KINDS, {}).get(record.id, ()))
    else:
        # two reports of one request applied at once (a webhook and a poll) wait for each
        # other here, so the second sees the first's notices (PostgreSQL; SQLite's writes
        # are serial already)
        session.execute(select(ServiceRequest.id).where(ServiceRequest.id == record.id)
                        .with_for_update())
        made = set(session.scalars(select(Notice.kind).where(Notice.request_id == record.id)))
        made |= {o.kind for o in session.new
                 if isinstance(o, Notice) and o.request_id == record.id}
    kinds = [k for k in kinds if k not in made]
    if not kinds:
        return []
    service = gateway.services.get(record.service)
    if service is None:
        return []
    contacts = service.notice_contacts(gateway.vault.open(record.payload_ciphertext,
                                                          on=record),
                                       gateway.service_configs.get(record.service, {}))
    if contacts is None or not contacts.phone:
        return []
    language = contacts.language or gateway.region.locale
    title = service.title if language == "en" else service.titles.get(language,
                                                                       service.title)
    queued = []
    for kind in kinds:
        params = _parameters(gateway, session, record, kind, contacts, title)
        if params is None:
            log.info("%s notice of request %s not made yet: a fact it says is not known "
                     "(a courier's plate, a link, an office phone)", kind, record.id)
            continue
        notice = queue_notice(gateway, session, record, kind, params, to=contacts.phone,
                              urgent=kind == "pin", language=language)
        if notice is not None:
            queued.append(notice)
    return queued


def _parameters(gateway, session, record, kind, contacts, title) -> dict | None:
    """A kind's template parameters from the request, or None when one is not known."""
    name = first_name(contacts.name)
    if kind == "accepted":
        url = gateway.links.tracking_url(record)
        return {"first_name": name, "service": title, "tracking_url": url} if url else None
    if kind == "courier_assigned":
        courier, plate = record.courier_first_name, record.courier_plate
        if not (courier and plate and ALLOWED_PARAMETERS["courier_name"].fullmatch(courier)
                and ALLOWED_PARAMETERS["plate"].fullmatch(plate)):
            return None
        return {"first_name": name, "service": title, "courier_name": courier,
                "plate": plate}
    if kind == "pin":
        return {"service": title, "pin": gateway.vault.open(record.delivery_pin_ciphertext)}
    if kind == "delivered":
        url = gateway.links.survey_url(record)
        return {"first_name": name, "service": title, "survey_url": url} if url else None
    if kind == "failed":
        office, phone = office_of(gateway, session, record, contacts)
        return {"first_name": name, "service": title, "office": office,
                "office_phone": phone} if phone else None
    return None


def office_of(gateway, session, record, contacts) -> tuple[str, str | None]:
    """The office a failed notice tells the citizen to call: the request's pickup place
    (the puskesmas that sent the medicine) with its phone, as the service says it; else the
    agency's name and the service's ``office_phone`` setting."""
    if contacts.office and contacts.office_phone:
        office = contacts.office
        phone = contacts.office_phone
    else:
        agency = session.get(Agency, record.agency_id)
        office = contacts.office or (agency.name if agency else "")
        phone = gateway.service_settings(record.service).get("office_phone")
    office = " ".join(office.split())[:80]
    if not ALLOWED_PARAMETERS["office"].fullmatch(office or ""):
        office = "-"
    if phone and not ALLOWED_PARAMETERS["office_phone"].fullmatch(phone):
        phone = None
    return office, phone


def first_name(name: str) -> str:
    """The first word of a name, as a template's ``first_name`` takes it."""
    word = (name or "").split()[0] if (name or "").split() else ""
    word = re.sub(r"[^\w'.-]", "", word)[:30]
    return word if ALLOWED_PARAMETERS["first_name"].fullmatch(word) else "Bapak/Ibu"
