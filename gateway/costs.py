"""What deliveries cost, and the budgets they are paid from.

Money is exact: whole units of the currency (rupiah), as Python ``int`` and ``BIGINT``
columns; never a float. The life of one request's money:

1. **Quote.** Before booking, dispatch asks the candidate couriers for a quote
   (:func:`ask_quotes`; each adapter's ``quote``: GO-SEND's price estimate, Lalamove's
   quotation, GrabExpress's delivery quotes, the own fleet's tariff) and records every answer,
   or why there is none, in ``delivery_quotes``. A quote that fails never blocks dispatch: that
   courier keeps its place in the configured order.
2. **Policy.** The service's ``routing_policy`` orders the candidates
   (:func:`order_by_policy`, pure): ``ordered`` (the configured order), ``cheapest`` (the
   cheapest quote among those whose estimate meets ``target_minutes``) or ``fastest``.
3. **Reserve.** Just before a courier is called, the chosen quote is reserved against the
   agency's budgets for the service, the month's and the year's, those that exist
   (:func:`reserve`; the request remembers which, ``budget_periods``): one
   conditional ``UPDATE ... WHERE spent + reserved + amount <= limit_amount`` per budget, so
   two requests racing for the last of a budget cannot both pass (SQLite serialises writers;
   PostgreSQL re-checks the condition on the locked row). A booking that fails gives the
   reservation back (:func:`release`).
4. **Settle.** The provider's reports carry the price it charges (GO-SEND's ``price``,
   Lalamove's ``priceBreakdown.total``, Grab's ``quote.amount``): tracking records it as the
   request's final price (:func:`record_final_price`), and when the request ends its
   reservation becomes spending (:func:`settle`).

Budgets bind live requests only: a test key's requests go to simulators and cost nothing.
When a budget is used up, intake asks :func:`admission`: the service's
``on_budget_exhausted`` refuses new requests (``budget_exhausted``) or holds them
(``held_for_budget``) until someone in the console releases or refuses them
(``gateway.operations.release_held``, ``refuse_held``). Settlement runs wherever a request
ends: ``gateway.records.transition`` calls :func:`settle`.

This module never speaks HTTP, and never names a service.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update

from .couriers import CourierError, Quote
from .errors import BudgetExhausted, Invalid
from .events import Event
from .models import Budget, DeliveryQuote, ServiceRequest, utcnow
from .statuses import Status

log = logging.getLogger(__name__)

POLICIES = ("ordered", "cheapest", "fastest")
ON_EXHAUSTED = ("refuse", "hold")
#: the share of a budget at which the console warns
WARNING_SHARE = Decimal("0.8")
#: the largest amount a budget or a price may hold (a sanity bound, in whole units)
MAX_AMOUNT = 10 ** 15


# -- pure: periods, policy, budget states ----------------------------------------------------
def periods(region, moment: datetime) -> tuple[str, str]:
    """The month (``YYYY-MM``) and the year (``YYYY``) of ``moment`` in the region's
    calendar: the budgets a request made then counts against."""
    local = region.local(moment)
    return f"{local.year:04d}-{local.month:02d}", f"{local.year:04d}"


def valid_period(text: str) -> bool:
    """``YYYY`` or ``YYYY-MM`` with a real month."""
    if len(text) == 4 and text.isdigit():
        return 2000 <= int(text) <= 2999
    if len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit():
        return 2000 <= int(text[:4]) <= 2999 and 1 <= int(text[5:]) <= 12
    return False


def usable(quote) -> bool:
    """A quote with an amount from a courier that serves the order."""
    return isinstance(quote, Quote) and quote.serviceable and quote.price is not None


def order_by_policy(chosen: list[str], quotes: dict, policy: str,
                    target_minutes: int | None) -> list[str]:
    """The couriers to try, in the order ``policy`` gives them.

    ``quotes`` maps a courier to its :class:`~gateway.couriers.Quote`, or to anything else
    (an error, None) when it gave none. ``cheapest``: couriers with a usable quote whose
    estimate meets ``target_minutes`` (an estimate not given counts as meeting it), cheapest
    first; ``fastest``: couriers with an estimate, quickest first (then cheapest). Ties keep
    the configured order, and every other courier follows in the configured order, so a
    courier whose quote failed is still tried.
    """
    if policy not in ("cheapest", "fastest"):
        return list(chosen)
    position = {name: i for i, name in enumerate(chosen)}
    if policy == "cheapest":
        first = [n for n in chosen if usable(quotes.get(n)) and (
            target_minutes is None or quotes[n].duration_minutes is None
            or quotes[n].duration_minutes <= target_minutes)]
        first.sort(key=lambda n: (quotes[n].price, position[n]))
    else:
        first = [n for n in chosen if usable(quotes.get(n))
                 and quotes[n].duration_minutes is not None]
        first.sort(key=lambda n: (quotes[n].duration_minutes, quotes[n].price, position[n]))
    return first + [n for n in chosen if n not in first]


@dataclass(frozen=True)
class BudgetState:
    """One budget as the console shows it."""

    id: int
    agency_id: str
    service: str
    period: str
    limit: int
    reserved: int
    spent: int
    currency: str

    @property
    def used(self) -> int:
        return self.reserved + self.spent

    @property
    def share(self) -> Decimal:
        """Used / limit (1 for a zero limit)."""
        return Decimal(self.used) / Decimal(self.limit) if self.limit else Decimal(1)

    @property
    def level(self) -> str:
        """``ok``, ``warning`` (at :data:`WARNING_SHARE`) or ``exhausted`` (at 100 %)."""
        if self.share >= 1:
            return "exhausted"
        return "warning" if self.share >= WARNING_SHARE else "ok"

    @property
    def percent(self) -> int:
        return int(self.share * 100)

    @classmethod
    def of(cls, row: Budget) -> BudgetState:
        return cls(row.id, row.agency_id, row.service, row.period, row.limit_amount,
                   row.reserved, row.spent, row.currency)


def cost_view(record: ServiceRequest, currency: str | None) -> dict:
    """A request's ``cost`` as the API and the console show it."""
    return {"quoted": record.quoted_amount, "final": record.final_amount,
            "currency": record.cost_currency or currency, "provider": record.provider}


# -- settings --------------------------------------------------------------------------------
def policy_of(gateway, service_name: str) -> str:
    return gateway.service_settings(service_name).get("routing_policy") or "ordered"


def on_exhausted(gateway, service_name: str) -> str:
    return gateway.service_settings(service_name).get("on_budget_exhausted") or "refuse"


# -- quotes ----------------------------------------------------------------------------------
def ask_quotes(gateway, request_id: str, order, names: list[str]) -> dict:
    """Ask each of ``names`` (that gives quotes) for a quote of ``order`` and record every
    answer. :return: courier -> Quote, or the error met (never raised)"""
    answers: dict = {}
    for name in names:
        courier = gateway.couriers.get(name)
        if courier is None or not courier.gives_quotes():
            continue
        try:
            answers[name] = courier.quote(order)
        except Exception as exc:  # a quote never blocks dispatch: recorded, then ordered
            answers[name] = exc
    if answers:
        with gateway.db.write() as session:
            record_quotes(session, request_id, answers)
    return answers


def record_quotes(session, request_id: str, answers: dict) -> None:
    """One ``delivery_quotes`` row per answer, in the caller's transaction."""
    for name, answer in answers.items():
        if isinstance(answer, Quote):
            session.add(DeliveryQuote(
                request_id=request_id, courier=name,
                outcome="ok" if answer.serviceable else "not_serviceable",
                amount=_bounded(answer.price), currency=(answer.currency or "")[:3] or None,
                duration_minutes=answer.duration_minutes,
                distance_m=round(answer.distance_km * 1000)
                if answer.distance_km is not None else None,
                valid_until=answer.valid_until))
        else:
            outcome = getattr(answer, "outcome", None) if isinstance(answer, CourierError) \
                else None
            session.add(DeliveryQuote(
                request_id=request_id, courier=name, outcome="failed",
                detail=f"{outcome or type(answer).__name__}: {str(answer)[:150]}"[:200]))


def _bounded(amount: int | None) -> int | None:
    if amount is None or not 0 <= amount < MAX_AMOUNT:
        return None
    return int(amount)


def _quote_added_now(session, request_id: str, courier: str) -> DeliveryQuote | None:
    """The quote row this transaction added for the request at ``courier`` (not flushed)."""
    return next((row for row in session.new if isinstance(row, DeliveryQuote)
                 and row.request_id == request_id and row.courier == courier), None)


def note_booked_quote(session, record: ServiceRequest, quote) -> None:
    """The booked courier's quote becomes the request's (in the caller's transaction)."""
    if usable(quote):
        record.quoted_amount = _bounded(quote.price)
        record.cost_currency = (quote.currency or record.cost_currency or "")[:3] or None
        latest = _quote_added_now(session, record.id, quote.courier)
        if latest is None:
            # Without flushing: a flush per booking (the query's autoflush) made a batch's
            # answers cost 5 ms a request while it held the write lock.
            with session.no_autoflush:
                latest = session.scalars(select(DeliveryQuote).where(
                    DeliveryQuote.request_id == record.id, DeliveryQuote.courier == quote.courier)
                    .order_by(DeliveryQuote.id.desc()).limit(1)).first()
        if latest is not None:
            latest.chosen = True
    elif record.quoted_amount is None and record.reserved_amount:
        record.quoted_amount = record.reserved_amount


# -- budgets: admission, reservation, settlement ---------------------------------------------
def budgets_for(session, agency_id: str, service: str, month: str) -> list[Budget]:
    return list(session.scalars(select(Budget).where(
        Budget.agency_id == agency_id, Budget.service == service,
        Budget.period.in_([month, month[:4]]))))


def admission(gateway, session, agency_id: str, key_type: str, service: str,
              now: datetime) -> str | None:
    """Whether a new request may come in under the agency's budgets (in intake's
    transaction). :return: None, or ``"hold"`` when it must wait for approval

    :raises BudgetExhausted: a budget is used up and the service refuses
    """
    if key_type != "live":
        return None
    month, _year = periods(gateway.region, now)
    spent = [BudgetState.of(b) for b in budgets_for(session, agency_id, service, month)]
    exhausted = [b for b in spent if b.level == "exhausted"]
    if not exhausted:
        return None
    if on_exhausted(gateway, service) == "hold":
        return "hold"
    raise BudgetExhausted(details={"periods": sorted(b.period for b in exhausted)})


class _Refused(Exception):
    """A budget has no room: roll the reservation's transaction back."""


def reserve(gateway, request_id: str, amount: int | None, *, force: bool = False) -> bool:
    """Reserve ``amount`` of the request's budgets (month and year) before it is booked.

    Each budget is changed by one conditional UPDATE that succeeds only while
    ``spent + reserved + amount <= limit_amount`` (or always, with ``force``: a request
    released from a hold by someone in the console); if any budget refuses, none changes.
    A request that already holds a reservation keeps it (a dispatch run again). Test keys
    reserve nothing.

    :return: False when a budget has no room for it
    """
    amount = max(0, _bounded(amount) or 0)
    try:
        with gateway.db.write() as session:
            record = session.get(ServiceRequest, request_id)
            if record is None or record.key_type != "live" or record.reserved_amount is not None:
                return True
            force = force or record.budget_approved_by is not None
            reserved = []
            for period in periods(gateway.region, record.created_at):
                condition = [Budget.agency_id == record.agency_id,
                             Budget.service == record.service, Budget.period == period]
                exists = session.scalar(select(Budget.id).where(*condition))
                if exists is None:
                    continue
                if not force:
                    condition.append(Budget.spent + Budget.reserved + amount
                                     <= Budget.limit_amount)
                changed = session.execute(
                    update(Budget).where(*condition)
                    .values(reserved=Budget.reserved + amount, updated_at=utcnow())
                    .execution_options(synchronize_session=False)).rowcount
                if changed != 1:
                    raise _Refused(period)
                reserved.append(period)
            if reserved:    # no budget, nothing held: a budget set later counts from then
                record.reserved_amount, record.budget_periods = amount, ",".join(reserved)
            return True
    except _Refused:
        return False


def _move(session, record: ServiceRequest, reserved: int, spent: int) -> None:
    """Take ``reserved`` off and add ``spent`` to the budgets the request reserved from."""
    session.execute(
        update(Budget).where(Budget.agency_id == record.agency_id,
                             Budget.service == record.service,
                             Budget.period.in_(record.budget_periods.split(",")))
        .values(reserved=Budget.reserved - reserved, spent=Budget.spent + spent,
                updated_at=utcnow())
        .execution_options(synchronize_session=False))


def release(session, record: ServiceRequest) -> None:
    """Give back what the request reserved (its booking failed), in the caller's
    transaction; it reserves again when the next courier is tried."""
    if record.reserved_amount is None or not record.budget_periods:
        return
    _move(session, record, record.reserved_amount, 0)
    record.reserved_amount, record.budget_periods = None, None


def release_by_id(gateway, request_id: str) -> None:
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if record is not None:
            release(session, record)


def record_final_price(session, record: ServiceRequest, amount, currency: str | None) -> None:
    """The price the provider reports charging (in tracking's transaction). A price that
    arrives after the request was settled corrects what its budgets count as spent."""
    amount = _bounded(amount if isinstance(amount, int) else None)
    if amount is None or amount == record.final_amount:
        return
    settled = bool(record.budget_periods) and record.reserved_amount is None
    if settled and record.status == Status.DELIVERED:
        _move(session, record, 0, amount - (record.final_amount or record.quoted_amount or 0))
    record.final_amount = amount
    if currency and not record.cost_currency:
        record.cost_currency = str(currency)[:3]


def settle(session, record: ServiceRequest) -> None:
    """Turn the request's reservation into spending once it has ended (in tracking's
    transaction): a delivery spends its final price (its quote if no price was reported);
    any other end spends nothing (providers charge for deliveries made)."""
    if record.reserved_amount is None or not record.budget_periods:
        return
    if not Status(record.status).terminal:
        return
    spent = 0
    if record.status in (Status.DELIVERED, Status.RETURNED):
        spent = record.final_amount if record.final_amount is not None \
            else record.reserved_amount
    _move(session, record, record.reserved_amount, spent)
    record.reserved_amount = None


# -- budgets as the console sets and shows them -------------------------------------------------
def set_budget(gateway, agency_id: str, service: str, period: str, limit: int,
               actor: str) -> BudgetState:
    """Create or change a budget (audited).

    :raises Invalid: a period that is not ``YYYY`` or ``YYYY-MM``, a negative or huge limit
    """
    problems = {}
    if not valid_period(period):
        problems["period"] = ["Use YYYY for a year or YYYY-MM for a month."]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < MAX_AMOUNT:
        problems["limit"] = ["Use a whole amount, 0 or more."]
    if service not in gateway.services:
        problems["service"] = ["No such service."]
    if problems:
        raise Invalid("validation_failed", "The budget is not valid.", fields=problems)
    with gateway.db.write() as session:
        row = session.scalars(select(Budget).where(
            Budget.agency_id == agency_id, Budget.service == service,
            Budget.period == period)).first()
        before = row.limit_amount if row is not None else None
        if row is None:
            row = Budget(agency_id=agency_id, service=service, period=period,
                         limit_amount=limit, reserved=0, spent=0,
                         currency=gateway.region.currency)
            session.add(row)
        else:
            row.limit_amount, row.updated_at = limit, utcnow()
        gateway.track(session, Event("budget.set", actor=actor, target=f"agency:{agency_id}",
                                     details={"service": service, "period": period,
                                              "limit": limit, "before": before}))
        session.flush()
        return BudgetState.of(row)


def budget_states(gateway, agency_id: str) -> list[BudgetState]:
    """The agency's budgets, newest period first."""
    with gateway.db.read() as session:
        rows = session.scalars(select(Budget).where(Budget.agency_id == agency_id)
                               .order_by(Budget.period.desc(), Budget.service)).all()
        return [BudgetState.of(row) for row in rows]
