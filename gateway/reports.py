"""The figures the console's dashboard and queues page and the ``/metrics`` scrape read:
today's requests, how fast they went out and arrived, the providers' health and the queues.

One home for every figure, in the core, so that the dashboard and the metrics cannot tell
two stories and the core never reaches into the console for them.

Every figure is an SQL aggregate (``GROUP BY``, ``COUNT``, ``SUM`` over ``CASE``) or a Redis
counter: the dashboard stays open all day over tables that only grow, so nothing here loads
rows one by one into Python. The functions take a session (or Redis, or the circuit breaker)
and the moment to count at, and return plain data; callers only render it.

"Today" is the region's day (``gateway.region``), midnight to midnight in its zone (WIB,
WITA or WIT), whatever the server's zone; callers pass its bounds. Only ids, services,
statuses, couriers and times are read here, never personal data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import Float, and_, case, func, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from . import batch, skm, tracking
from .audit import first_seq_at, recorded_time
from .couriers import failed_outcomes
from .models import (
    AuditRecord,
    CourierAttempt,
    ProviderEventRecord,
    ServiceRequest,
    StatusEvent,
    SurveyAnswer,
    utcnow,
)
from .queues import QueueNames, oldest_job_age
from .statuses import RANKS, AttemptState, Status

#: a request counts as dispatched quickly when a courier booked it this soon after we
#: accepted it (answered 202)
DISPATCH_WITHIN = timedelta(seconds=10)
#: how far back the provider health looks for failed calls
HEALTH_WINDOW = timedelta(hours=1)
#: statuses that end a request without a delivery: past its target at once
ENDED_UNDELIVERED = (Status.FAILED, Status.NO_DRIVER, Status.RETURNED)


class seconds_between(FunctionElement):  # noqa: N801 - an SQL function, named like one
    """``later - earlier`` in seconds, on both engines (timestamps are naive UTC)."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between_postgresql(element, compiler, **kw):
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _created_in(start: datetime, end: datetime):
    return and_(ServiceRequest.created_at >= start, ServiceRequest.created_at < end)


@dataclass
class Share:
    """``part`` of ``whole``; ``percent`` is None when there is nothing to measure yet."""

    part: int
    whole: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.part / self.whole) if self.whole else None


@dataclass
class TodayCounts:
    total: int
    by_service: list[tuple[str, int]]
    #: in lifecycle order
    by_status: list[tuple[str, int]]
    #: the courier that booked it; None: no courier holds it (yet)
    by_provider: list[tuple[str | None, int]]


def _count_by(session: Session, column, start: datetime, end: datetime) -> list[tuple]:
    rows = session.execute(select(column, func.count()).where(_created_in(start, end))
                           .group_by(column)).all()
    return [(value, count) for value, count in rows]


def today_counts(session: Session, start: datetime, end: datetime) -> TodayCounts:
    by_service = sorted(_count_by(session, ServiceRequest.service, start, end),
                        key=lambda row: (-row[1], row[0]))
    by_status = sorted(_count_by(session, ServiceRequest.status, start, end),
                       key=lambda row: (RANKS.get(row[0], 999), row[0]))
    by_provider = sorted(_count_by(session, ServiceRequest.provider, start, end),
                         key=lambda row: (row[0] is None, -row[1], row[0] or ""))
    return TodayCounts(sum(count for _, count in by_service), by_service, by_status,
                       by_provider)


def dispatch_speed(session: Session, start: datetime, end: datetime,
                   now: datetime | None = None, service: str | None = None) -> Share:
    """Of today's requests (of one ``service``, or all), how many a courier booked within
    :data:`DISPATCH_WITHIN`.

    Counted: every request booked, and every other one older than the limit, except those
    cancelled before a courier held them (the agency's choice, not our speed). A request
    still inside its first seconds is not counted until it is booked or late.
    """
    now = now or utcnow()
    of_service = ServiceRequest.service == service if service is not None else true()
    booked = (select(CourierAttempt.request_id.label("request_id"),
                     func.min(CourierAttempt.updated_at).label("at"))
              .join(ServiceRequest, ServiceRequest.id == CourierAttempt.request_id)
              .where(_created_in(start, end), CourierAttempt.state == AttemptState.BOOKED.value)
              .group_by(CourierAttempt.request_id).subquery())
    fast = and_(booked.c.at.is_not(None),
                seconds_between(booked.c.at, ServiceRequest.created_at)
                <= DISPATCH_WITHIN.total_seconds())
    counted = or_(booked.c.at.is_not(None),
                  and_(ServiceRequest.created_at <= now - DISPATCH_WITHIN,
                       ServiceRequest.status != Status.CANCELLED.value))
    part, whole = session.execute(
        select(func.coalesce(func.sum(case((fast, 1), else_=0)), 0), func.count())
        .select_from(ServiceRequest).outerjoin(booked, booked.c.request_id == ServiceRequest.id)
        .where(_created_in(start, end), of_service, counted)).one()
    return Share(int(part), int(whole))


@dataclass
class OnTime:
    service: str
    #: minutes from acceptance to delivery; None: this service is not measured
    target_minutes: int | None
    share: Share


def delivery_on_time(session: Session, start: datetime, end: datetime,
                     targets: dict[str, int | None], now: datetime | None = None
                     ) -> list[OnTime]:
    """Per service, of today's requests that are due, how many were delivered in time.

    Due: delivered, ended without a delivery (failed, no driver, returned), or older than
    the target; a request still on its way within its target is not judged yet, and one the
    agency cancelled is not judged at all. One aggregate per service (there are a handful).
    """
    now = now or utcnow()
    delivered = (select(StatusEvent.request_id.label("request_id"),
                        func.min(StatusEvent.created_at).label("at"))
                 .join(ServiceRequest, ServiceRequest.id == StatusEvent.request_id)
                 .where(_created_in(start, end), StatusEvent.status == Status.DELIVERED.value,
                        StatusEvent.applied.is_(True))
                 .group_by(StatusEvent.request_id).subquery())
    results = []
    for service, minutes in sorted(targets.items()):
        if minutes is None:
            results.append(OnTime(service, None, Share(0, 0)))
            continue
        in_time = and_(delivered.c.at.is_not(None),
                       seconds_between(delivered.c.at, ServiceRequest.created_at)
                       <= minutes * 60)
        due = and_(ServiceRequest.status != Status.CANCELLED.value,
                   or_(delivered.c.at.is_not(None),
                       ServiceRequest.status.in_([s.value for s in ENDED_UNDELIVERED]),
                       ServiceRequest.created_at <= now - timedelta(minutes=minutes)))
        part, whole = session.execute(
            select(func.coalesce(func.sum(case((in_time, 1), else_=0)), 0), func.count())
            .select_from(ServiceRequest)
            .outerjoin(delivered, delivered.c.request_id == ServiceRequest.id)
            .where(_created_in(start, end), ServiceRequest.service == service, due)).one()
        results.append(OnTime(service, minutes, Share(int(part), int(whole))))
    return results


@dataclass
class ProviderHealth:
    courier: str
    #: ``closed`` (working), ``open`` (skipped by routing) or ``half_open`` (on trial)
    circuit: str
    calls: int
    errors: int
    last_error_at: datetime | None = None
    #: the error's class name, as audited (never a provider's message)
    last_error: str | None = None


def provider_health(session: Session, circuits, couriers: Iterable[str],
                    now: datetime | None = None) -> list[ProviderHealth]:
    """Circuit state and the last hour's calls and failed calls, per courier instance.

    Provider calls are audited as ``courier.call`` with the breaker's outcomes; failures are
    the outcomes the breaker counts (timeouts, 5xx, 429, unknown outcomes, refused keys).
    """
    now = now or utcnow()
    since = first_seq_at(session, now - HEALTH_WINDOW)
    is_error = AuditRecord.outcome.in_(sorted(failed_outcomes()))
    rows = session.execute(
        select(AuditRecord.target, func.count(),
               func.coalesce(func.sum(case((is_error, 1), else_=0)), 0),
               func.max(case((is_error, AuditRecord.seq), else_=None)))
        .where(AuditRecord.seq >= since, AuditRecord.action == "courier.call",
               AuditRecord.outcome != "unsupported")
        .group_by(AuditRecord.target)).all()
    by_courier = {target.removeprefix("courier:"): (calls, errors, last)
                  for target, calls, errors, last in rows if target}
    last_seqs = [last for _calls, _errors, last in by_courier.values() if last is not None]
    last_errors = {record.seq: record for record in session.scalars(
        select(AuditRecord).where(AuditRecord.seq.in_(last_seqs)))} if last_seqs else {}
    health = []
    for courier in sorted(set(couriers)):
        calls, errors, last = by_courier.get(courier, (0, 0, None))
        record = last_errors.get(last)
        health.append(ProviderHealth(
            courier, circuits.state(courier), int(calls), int(errors),
            last_error_at=recorded_time(record.recorded_at) if record else None,
            last_error=((record.details or {}).get("error") or record.outcome)
            if record else None))
    return health


#: statuses of a request a courier is carrying: its webhooks are expected
CARRIED = (Status.BOOKED, Status.DRIVER_ASSIGNED, Status.PICKED_UP)


@dataclass
class WebhookSilence:
    courier: str
    #: requests this courier holds that are not finished (booked, driver assigned, picked up)
    active_bookings: int
    #: when its last webhook was accepted (verified and stored), or None if never
    last_webhook_at: datetime | None
    #: seconds since that webhook, or since the oldest active booking began if later: how
    #: long the courier has said nothing while it had something to say
    quiet_seconds: float | None
    #: quiet for longer than the threshold while it has active bookings
    silent: bool


def webhook_silence(session: Session, couriers: Iterable[str], threshold: timedelta,
                    now: datetime | None = None) -> list[WebhookSilence]:
    """Per courier instance that takes webhooks: its last accepted webhook and whether it has
    gone silent while carrying bookings (a provider that disabled our URL, as Lalamove does
    after 10 failed sendings, or a URL never registered). Polling keeps such bookings moving,
    but late, and the URL must be registered again: this is what an operator is alerted to.

    One indexed lookup of the newest webhook per courier (``ix_provider_events_courier_source
    _received``), and one aggregate of the requests each carries.
    """
    now = now or utcnow()
    names = sorted(set(couriers))
    carried = {provider: (int(count), oldest) for provider, count, oldest in session.execute(
        select(ServiceRequest.provider, func.count(), func.min(ServiceRequest.created_at))
        .where(ServiceRequest.provider.in_(names),
               ServiceRequest.status.in_([str(s) for s in CARRIED]))
        .group_by(ServiceRequest.provider)).all()} if names else {}
    figures = []
    for courier in names:
        last = session.scalar(
            select(ProviderEventRecord.received_at)
            .where(ProviderEventRecord.courier == courier,
                   ProviderEventRecord.source == "webhook")
            .order_by(ProviderEventRecord.received_at.desc()).limit(1))
        active, oldest = carried.get(courier, (0, None))
        since = max((t for t in (last, oldest) if t is not None), default=None)
        quiet = (now - since).total_seconds() if since is not None else None
        figures.append(WebhookSilence(
            courier, active, last, quiet,
            silent=bool(active) and quiet is not None and quiet > threshold.total_seconds()))
    return figures


@dataclass
class QueueFigures:
    name: str
    #: waiting to be picked up by a worker
    depth: int
    started: int
    #: waiting for their retry time
    scheduled: int
    failed: int
    #: ids listed for a batch job: accepted requests for batch dispatch (``gateway.batch``) on
    #: the dispatch queue, stored provider reports (``gateway.tracking``) on the reports one;
    #: the queue holds one job for many of them
    listed: int = 0
    #: how long the oldest waiting job (or listed id) has waited; None: nothing waits
    oldest_age_seconds: float | None = None
    #: its oldest waits longer than ``jobs.max_queue_age_seconds``: work is falling behind
    lagging: bool = False


#: the lists of ids batch jobs take from, per queue
LISTS = {QueueNames.DISPATCH: batch.READY, QueueNames.REPORTS: tracking.REPORTS}


def _oldest_listed_age(redis, session: Session | None, name: str,
                       now: datetime) -> float | None:
    """The age of the first id a batch job would take next: since its request was accepted
    (dispatch) or its report received (reports). Read only with a session."""
    worklist = LISTS.get(name)
    head = redis.lindex(worklist.key, 0) if worklist is not None and session is not None \
        else None
    if not head:
        return None
    if name == QueueNames.DISPATCH:
        since = session.scalar(select(ServiceRequest.created_at).where(
            ServiceRequest.id == head.decode()))
    elif head.isdigit():
        since = session.scalar(select(ProviderEventRecord.received_at).where(
            ProviderEventRecord.id == int(head)))
    else:
        since = None
    return max((now - since).total_seconds(), 0.0) if since is not None else None


def queue_figures(redis, session: Session | None = None, now: datetime | None = None,
                  max_age_seconds: float | None = None) -> list[QueueFigures]:
    """Per queue, what rq's own counters say, the ids listed for batch jobs, and the age of
    what waits longest (the oldest job, or with ``session`` the oldest listed id too);
    ``lagging`` when that is older than ``max_age_seconds``.

    :raises redis.exceptions.RedisError: when Redis is unreachable (the page says so)
    """
    now = now or utcnow()
    figures = []
    for name in QueueNames.all():
        queue = Queue(name, connection=redis)
        ages = [age for age in (oldest_job_age(queue, now),
                                _oldest_listed_age(redis, session, name, now))
                if age is not None]
        oldest = round(max(ages), 1) if ages else None
        worklist = LISTS.get(name)
        # No clean-up of the started registry here: that would fail jobs, and a page that
        # reads must not change what the workers see.
        figures.append(QueueFigures(
            name, queue.count,
            StartedJobRegistry(name, connection=redis).get_job_count(cleanup=False),
            ScheduledJobRegistry(name, connection=redis).get_job_count(cleanup=False),
            FailedJobRegistry(name, connection=redis).count,
            worklist.length(redis) if worklist is not None else 0,
            oldest, max_age_seconds is not None and oldest is not None
            and oldest > max_age_seconds))
    return figures


def gateway_queue_figures(gateway, session: Session | None = None) -> list[QueueFigures]:
    """:func:`queue_figures` as the gateway's settings judge them (``jobs.
    max_queue_age_seconds``)."""
    return queue_figures(gateway.redis, session,
                         max_age_seconds=gateway.settings["jobs"]["max_queue_age_seconds"])


def queue_figures_or_none(redis, session: Session | None = None,
                          max_age_seconds: float | None = None) -> list[QueueFigures] | None:
    """:func:`queue_figures`, or None when Redis cannot be reached (the dashboard still
    shows what the database knows)."""
    try:
        return queue_figures(redis, session, max_age_seconds=max_age_seconds)
    except RedisError:
        return None


# -- the satisfaction survey (SKM) --------------------------------------------------------------
@dataclass(frozen=True)
class SurveyFigure:
    """The SKM index of one group of answers (``service`` and ``agency_id`` None: every one),
    with how many carried a complaint."""

    service: str | None
    agency_id: str | None
    index: skm.Index
    complaints: int


def survey_conditions(since: datetime | None = None, until: datetime | None = None,
                      service: str | None = None, agency_id: str | None = None,
                      key_type: str | None = None) -> list:
    """The ``WHERE`` of survey answers in a period (UTC bounds, ``until`` exclusive) for a
    service, an agency and a key type (None: any)."""
    conditions = []
    if since is not None:
        conditions.append(SurveyAnswer.created_at >= since)
    if until is not None:
        conditions.append(SurveyAnswer.created_at < until)
    for column, value in ((SurveyAnswer.service, service),
                          (SurveyAnswer.agency_id, agency_id),
                          (SurveyAnswer.key_type, key_type)):
        if value:
            conditions.append(column == value)
    return conditions


def survey_figures(session: Session, conditions: list) -> tuple[SurveyFigure | None,
                                                               list[SurveyFigure]]:
    """The IKM of every answer matching ``conditions`` (:func:`survey_conditions`), and per
    service and agency: sums per element in SQL, the index in :mod:`gateway.skm`.

    :return: ``(all, per group)``; ``all`` is None when there is no answer
    """
    sums = [func.sum(getattr(SurveyAnswer, code)) for code in skm.CODES]
    complaints = func.sum(case((SurveyAnswer.has_complaint.is_(True), 1), else_=0))
    groups = session.execute(
        select(SurveyAnswer.service, SurveyAnswer.agency_id, func.count(), complaints, *sums)
        .where(*conditions).group_by(SurveyAnswer.service, SurveyAnswer.agency_id)
        .order_by(SurveyAnswer.service, SurveyAnswer.agency_id)).all()
    figures = [SurveyFigure(row[0], row[1], skm.from_sums(row[2], row[4:]), int(row[3] or 0))
               for row in groups]
    if not figures:
        return None, []
    totals = [sum(int(row[4 + i]) for row in groups) for i in range(len(skm.CODES))]
    everything = SurveyFigure(None, None, skm.from_sums(sum(row[2] for row in groups), totals),
                              sum(f.complaints for f in figures))
    return everything, figures
