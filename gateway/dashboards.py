"""The reports dashboard's figures: a period's requests by day and outcome, how long they took
to be booked and delivered against the service's target, failures by reason, what a delivery
cost per provider, the satisfaction index and where deliveries went.

Beside ``gateway.reports`` (today's figures, read all day), in the core: pure queries over a
session that return plain data, for the console's reports page and its CSV files alike, so a
chart, its table and its CSV tell one story. Callers pass the period in UTC (the region's
days, ``gateway.region``) and the scope (an agency and its key type, or the whole region).

One query reads the period's requests (ids, service, status, failure code, provider, final
price and two times per request, never personal data); medians and percentiles are computed
here, so every engine gives the same figure. A period is at most :data:`MAX_DAYS` long.

The map's points are the only figures that touch personal data: the drop-off's coordinates
are read from the request's sealed payload (through the service's own ``build_order``, as
notices do), rounded to :data:`POINT_DECIMALS` decimals (about 100 m) and returned without
anything else: no name, address, id or time. Nothing is stored for them, so the retention
purge (which drops the payload) drops the point too. This module must never return a
request's id or personal data beside a point.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import reports
from .models import ServiceRequest, StatusEvent, utcnow
from .statuses import Status

#: the longest period the page reports on, in days
MAX_DAYS = 366
#: the period when none is asked for: the last 30 days, today included
DEFAULT_DAYS = 30
#: decimals of a map point's coordinates (0.001 degree: about 110 m)
POINT_DECIMALS = 3
#: at most this many points on the map (the newest deliveries)
MAX_POINTS = 5000

OUTCOMES = ("delivered", "failed", "cancelled", "in_progress")
FAILED = frozenset(str(s) for s in reports.ENDED_UNDELIVERED)
#: statuses that mean a courier has booked it (the first one reached is the booking time)
BOOKED_OR_LATER = (Status.BOOKED, Status.DRIVER_ASSIGNED, Status.PICKED_UP, Status.DELIVERED)


def outcome_of(status: str) -> str:
    """``delivered``, ``failed`` (failed, no driver, returned), ``cancelled`` or
    ``in_progress`` (anything not ended)."""
    if status == Status.DELIVERED:
        return "delivered"
    if status in FAILED:
        return "failed"
    if status == Status.CANCELLED:
        return "cancelled"
    return "in_progress"


@dataclass(frozen=True)
class Scope:
    """What to count: requests made in ``[start, end)`` (UTC) of ``service`` (None: all), of
    ``agency_id`` in ``key_type``'s world (None: every agency, every world)."""

    start: datetime
    end: datetime
    service: str | None = None
    agency_id: str | None = None
    key_type: str | None = None

    def conditions(self) -> list:
        conditions = [ServiceRequest.created_at >= self.start,
                      ServiceRequest.created_at < self.end]
        for column, value in ((ServiceRequest.service, self.service),
                              (ServiceRequest.agency_id, self.agency_id),
                              (ServiceRequest.key_type, self.key_type)):
            if value:
                conditions.append(column == value)
        return conditions


def period(region, first: date | None, last: date | None, today: date | None = None
           ) -> tuple[date, date]:
    """The region's days ``first`` to ``last`` (both included) made sane: the last
    :data:`DEFAULT_DAYS` days when not given, in order, at most :data:`MAX_DAYS` long."""
    today = today or region.local(utcnow()).date()
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        first, last = last, first
    if (last - first).days >= MAX_DAYS:
        first = last - timedelta(days=MAX_DAYS - 1)
    return first, last


def bounds(region, first: date, last: date) -> tuple[datetime, datetime]:
    """UTC bounds of the region's days ``first`` to ``last`` (``end`` exclusive)."""
    return region.day(first)[0], region.day(last)[1]


@dataclass(frozen=True)
class Row:
    """One request, as the figures read it."""

    created_at: datetime
    service: str
    status: str
    failure_code: str | None
    provider: str | None
    final_amount: int | None
    currency: str | None
    booked_at: datetime | None
    delivered_at: datetime | None

    @property
    def outcome(self) -> str:
        return outcome_of(self.status)

    def minutes_to(self, moment: datetime | None) -> float | None:
        return None if moment is None else (moment - self.created_at).total_seconds() / 60


def rows(session: Session, scope: Scope) -> list[Row]:
    """The scope's requests with their first booking and delivery times (applied status
    events), oldest first."""
    booked = _first_event(scope, [str(s) for s in BOOKED_OR_LATER], "booked")
    delivered = _first_event(scope, [str(Status.DELIVERED)], "delivered")
    found = session.execute(
        select(ServiceRequest.created_at, ServiceRequest.service, ServiceRequest.status,
               ServiceRequest.failure_code, ServiceRequest.provider,
               ServiceRequest.final_amount, ServiceRequest.cost_currency,
               booked.c.at, delivered.c.at)
        .outerjoin(booked, booked.c.request_id == ServiceRequest.id)
        .outerjoin(delivered, delivered.c.request_id == ServiceRequest.id)
        .where(*scope.conditions()).order_by(ServiceRequest.created_at)).all()
    return [Row(*values) for values in found]


def _first_event(scope: Scope, statuses: list[str], name: str):
    return (select(StatusEvent.request_id.label("request_id"),
                   func.min(StatusEvent.created_at).label("at"))
            .join(ServiceRequest, ServiceRequest.id == StatusEvent.request_id)
            .where(*scope.conditions(), StatusEvent.status.in_(statuses),
                   StatusEvent.applied.is_(True))
            .group_by(StatusEvent.request_id).subquery(name))


# -- the figures ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def per_day(region, first: date, last: date, found: list[Row]) -> list[Day]:
    """Requests per region day (every day of the period, empty ones too) by outcome."""
    counts: dict[date, Counter] = defaultdict(Counter)
    for row in found:
        counts[region.local(row.created_at).date()][row.outcome] += 1
    days = []
    day = first
    while day <= last:
        days.append(Day(day, {o: counts[day][o] for o in OUTCOMES}))
        day += timedelta(days=1)
    return days


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def p95(values: list[float]) -> float | None:
    """The 95th percentile: the 19th of 20-quantiles, ``inclusive`` method (the values seen
    are the whole population); the value itself when there is one."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=20, method="inclusive")[18]


@dataclass(frozen=True)
class Timing:
    """How long one service's requests (``service`` None: every service's) took, in
    minutes from acceptance, against the service's target (acceptance to delivery)."""

    service: str | None
    target_minutes: int | None
    booked: int
    booking_median: float | None
    booking_p95: float | None
    delivered: int
    delivery_median: float | None
    delivery_p95: float | None
    #: delivered within the target, of the requests that are due (as ``reports``)
    within: reports.Share = field(default_factory=lambda: reports.Share(0, 0))


def _due_and_in_time(row: Row, target: int | None, now: datetime) -> tuple[bool, bool]:
    """As :func:`gateway.reports.delivery_on_time`: due when delivered, ended without a
    delivery, or older than the target; never when cancelled or the service has no target."""
    if target is None or row.status == Status.CANCELLED:
        return False, False
    minutes = row.minutes_to(row.delivered_at)
    due = (row.delivered_at is not None or row.status in FAILED
           or row.created_at <= now - timedelta(minutes=target))
    return due, due and minutes is not None and minutes <= target


def timings(found: list[Row], targets: dict[str, int | None], now: datetime | None = None
            ) -> list[Timing]:
    """One :class:`Timing` per service seen, then one for all of them (``service`` None)."""
    now = now or utcnow()
    by_service: dict[str, list[Row]] = defaultdict(list)
    for row in found:
        by_service[row.service].append(row)

    def timing(service: str | None, group: list[Row]) -> Timing:
        booking = [m for r in group if (m := r.minutes_to(r.booked_at)) is not None]
        delivery = [m for r in group if (m := r.minutes_to(r.delivered_at)) is not None]
        judged = [_due_and_in_time(r, targets.get(r.service), now) for r in group]
        return Timing(service, targets.get(service) if service else None,
                      len(booking), median(booking), p95(booking),
                      len(delivery), median(delivery), p95(delivery),
                      reports.Share(sum(1 for _, ok in judged if ok),
                                    sum(1 for due, _ in judged if due)))

    figures = [timing(name, group) for name, group in sorted(by_service.items())]
    if figures:
        figures.append(timing(None, found))
    return figures


def failures(found: list[Row]) -> list[tuple[str, int]]:
    """Requests ended without a delivery, by reason (the failure code, else the status),
    most frequent first."""
    counts = Counter(row.failure_code or row.status for row in found
                     if row.outcome == "failed")
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class ProviderCost:
    provider: str
    currency: str | None
    deliveries: int
    total: int
    #: mean final price, in whole units (half up)
    mean: int


def costs(found: list[Row]) -> list[ProviderCost]:
    """Per provider (and currency), the delivered requests with a final price: how many,
    their total and mean price. Requests with no final price reported are left out."""
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for row in found:
        if row.outcome == "delivered" and row.final_amount is not None:
            groups[(row.provider or "", row.currency)].append(row.final_amount)
    return [ProviderCost(provider, currency, len(amounts), sum(amounts),
                         int((Decimal(sum(amounts)) / len(amounts))
                             .quantize(Decimal(1), rounding=ROUND_HALF_UP)))
            for (provider, currency), amounts in sorted(groups.items(),
                                                       key=lambda i: (i[0][0], i[0][1] or ""))]


def survey(session: Session, scope: Scope) -> reports.SurveyFigure | None:
    """The satisfaction index of the answers given in the period (None: no answer)."""
    everything, _groups = reports.survey_figures(session, reports.survey_conditions(
        since=scope.start, until=scope.end, service=scope.service,
        agency_id=scope.agency_id, key_type=scope.key_type))
    return everything


def dropoff_locator(gateway) -> Callable[[ServiceRequest], tuple[float, float] | None]:
    """Where a request's delivery went, read from its sealed payload through its service's
    ``build_order`` (the last drop-off); None when purged, not a delivery or unreadable."""

    def locate(record: ServiceRequest) -> tuple[float, float] | None:
        service = gateway.services.get(record.service)
        if service is None or record.payload_ciphertext is None:
            return None
        try:
            order = service.build_order(gateway.vault.open(record.payload_ciphertext),
                                        gateway.service_configs.get(record.service, {}),
                                        "report")
            place = order.dropoffs[-1] if getattr(order, "dropoffs", None) else None
        except Exception:      # a point missing from a map must never break the page
            return None
        return None if place is None else (float(place.lat), float(place.lng))

    return locate


def delivery_points(session: Session, scope: Scope, locate, limit: int = MAX_POINTS
                    ) -> list[tuple[float, float]]:
    """The drop-off points of the scope's delivered requests (the newest ``limit``), rounded
    to :data:`POINT_DECIMALS` decimals (two deliveries to one place are two equal points),
    sorted so that nothing about the order of the deliveries is told."""
    records = session.scalars(
        select(ServiceRequest).where(*scope.conditions(),
                                     ServiceRequest.status == str(Status.DELIVERED))
        .order_by(ServiceRequest.created_at.desc()).limit(limit))
    points = []
    for record in records:
        found = locate(record)
        if found is not None:
            points.append((round(found[0], POINT_DECIMALS), round(found[1], POINT_DECIMALS)))
    return sorted(points)


@dataclass(frozen=True)
class Dashboard:
    first: date
    last: date
    scope: Scope
    total: int
    days: list[Day]
    timings: list[Timing]
    failures: list[tuple[str, int]]
    costs: list[ProviderCost]
    survey: reports.SurveyFigure | None
    points: list[tuple[float, float]]


def dashboard(session: Session, region, first: date, last: date, scope: Scope,
              targets: dict[str, int | None], locate=None, now: datetime | None = None
              ) -> Dashboard:
    """Every figure of the reports page for ``scope`` (whose bounds are ``first`` to
    ``last``, the region's days); the points only when ``locate`` is given."""
    found = rows(session, scope)
    return Dashboard(first, last, scope, len(found), per_day(region, first, last, found),
                     timings(found, targets, now), failures(found), costs(found),
                     survey(session, scope),
                     delivery_points(session, scope, locate) if locate else [])
