"""Following a booking to its end: provider reports in, forward-only status changes out.

Reports come from webhooks (``gateway.api.webhooks``) and from polling when webhooks are
late. Each is stored in the inbox first, deduplicated by its event key (at-least-once
delivery is normal), then applied by a job. Reports come in bursts (every booking sends
several), so they are applied in batches, like dispatch (``gateway.batch``): a stored report's
id goes on a Redis list (:data:`REPORTS`) and one report job takes up to
``jobs.report_batch_size`` of them (the ``LPOP`` is the claim: no two workers take one id),
applying each in its own transaction, oldest first, so one bad report never fails its
neighbours (it is handed to its own ``event`` job, with rq's retries). A report is applied
under a lock of its inbox row and only while ``processed_at`` is empty, so a report applied
twice (a batch and its own job, two workers) changes nothing; the earlier unapplied reports of
the same booking are applied before it, so a request's reports keep their order whichever
worker took them. A report taken and never applied (a killed worker) is still unapplied in
the database: the sweep queues its own job. What a report does:

* a report for the courier that holds the request moves it forward (late or repeated ones
  land on the timeline and change nothing);
* "no driver" from the courier that holds it is a failover: that courier is done for this
  request and dispatch runs again for the next one;
* a report about a booking the request has left (after failover) changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import costs, proofs
from .couriers import Booking, CourierError, ProviderEvent
from .db import gathered_after_commit
from .dispatch import adopt_booking
from .events import Event
from .inbox import fit_event
from .models import CourierAttempt, ProviderEventRecord, ServiceRequest, utcnow
from .queues import (
    QueueNames,
    WorkList,
    dispatch_waiting,
    enqueue_after_commit,
    enqueue_job,
    enqueue_new_jobs,
)
from .records import transition
from .statuses import TERMINAL, AttemptState, Status

log = logging.getLogger(__name__)

TRACKED = (Status.BOOKED, Status.DRIVER_ASSIGNED, Status.PICKED_UP)
#: stored reports waiting for a report job (see the module docstring)
REPORTS = WorkList("gateway:reports:ready", "gateway:reports:batch-scheduled",
                   QueueNames.REPORTS, "gateway.jobs.apply_reports", "reports-batch")


#: ``session.info`` key: the reports this transaction stores, listed for their jobs at commit
NEW_REPORTS = "tracking_new_reports"
#: ``session.info`` key: ``(courier, event key)`` of the reports this transaction stores (a
#: group's, not flushed yet: a query would not find them)
NEW_REPORT_KEYS = "tracking_new_report_keys"


def queue_report(gateway, session, report: ProviderEventRecord) -> None:
    """Have a stored report applied once ``session`` has committed: listed for a report
    job, or its own job when batches are off (``jobs.report_batch_size`` 0). The reports of
    one transaction (a group's) are listed together, oldest first, in one Redis round trip;
    their ids are known only once the commit has flushed them. A failure to list them is
    left to the sweep."""
    def listed(reports: list[ProviderEventRecord]) -> None:
        ids = sorted(r.id for r in reports)
        if gateway.settings["jobs"]["report_batch_size"]:
            REPORTS.push(gateway, ids)
        else:
            enqueue_new_jobs(gateway, [("event", i) for i in ids])

    gathered_after_commit(session, NEW_REPORTS, listed).append(report)


@dataclass(frozen=True)
class _Report:
    """A report as its inbox row will hold it, made ready before the transaction (fitted,
    its details sealed)."""

    event: ProviderEvent
    details_ciphertext: str | None


def store_events(gateway, courier: str, events: list[ProviderEvent], source: str, *,
                 grouped: bool = False) -> tuple[list[int], int]:
    """Put reports in the inbox and queue them, all in one transaction.

    :param grouped: in the next group of this process's writer (``gateway.group_commit``),
        with the webhooks and new requests that arrive together; otherwise in a transaction
        of its own (a worker's poll). Either way this returns once the reports are committed.
    :return: (new ids, duplicates): a report whose courier and event key the inbox holds
        already, or that came twice in ``events``, is a duplicate and stored once
    """
    reports = [_ready(gateway, courier, event) for event in events]

    def store(session) -> tuple[list[ProviderEventRecord], int]:
        return _store_in(gateway, session, courier, reports, source)

    for attempt in range(2):
        try:
            if grouped:
                added, duplicates = gateway.writer.run(store)
            else:
                with gateway.db.write() as session:
                    added, duplicates = store(session)
            return [row.id for row in added], duplicates
        except IntegrityError:
            # The same report arrived at the same moment through another process: once
            # more, where the query finds it committed and counts it a duplicate.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _ready(gateway, courier: str, event: ProviderEvent) -> _Report:
    event = fit_event(event)
    if "unfitted" in event.details:
        log.warning("a report from %s had values its inbox row cannot hold (%s): stored "
                    "fitted, the originals sealed beside it", courier,
                    ", ".join(sorted(event.details["unfitted"])))
    details = sealed_details(event)
    return _Report(event, gateway.vault.seal(details) if details else None)


def _store_in(gateway, session, courier: str, reports: list[_Report], source: str
              ) -> tuple[list[ProviderEventRecord], int]:
    """Add the reports the inbox does not hold yet: one query for those already committed,
    and the keys the transaction's earlier stores added (a group's rows reach the database
    together at its commit, one INSERT for all)."""
    if not reports:
        return [], 0
    keys = [r.event.event_key for r in reports]
    pending = session.info.setdefault(NEW_REPORT_KEYS, set())
    with session.no_autoflush:
        known = set(session.scalars(select(ProviderEventRecord.event_key).where(
            ProviderEventRecord.courier == courier, ProviderEventRecord.event_key.in_(keys))))
    added, duplicates = [], 0
    for report in reports:
        event = report.event
        if event.event_key in known or (courier, event.event_key) in pending:
            duplicates += 1
            continue
        pending.add((courier, event.event_key))
        row = ProviderEventRecord(
            courier=courier, event_key=event.event_key, source=source,
            provider_reference=event.provider_reference,
            our_reference=event.our_reference, raw_status=event.raw_status,
            status=str(event.status) if event.status else None,
            occurred_at=event.occurred_at, received_at=utcnow(),
            details_ciphertext=report.details_ciphertext)
        session.add(row)
        queue_report(gateway, session, row)
        added.append(row)
    return added, duplicates


_PLATE_JUNK = re.compile(r"[^A-Z0-9 ]")


def courier_of(event: ProviderEvent) -> dict:
    """What a report says of its courier, as the gateway keeps it: the first word of the
    name only (never the full name), the plate, the estimated arrival (ISO 8601, UTC);
    ``{}`` when it says nothing."""
    kept = {}
    words = (event.courier_name or "").split()
    first = re.sub(r"[^\w'.-]", "", words[0])[:30] if words else ""
    if first:
        kept["first_name"] = first
    plate = " ".join(_PLATE_JUNK.sub("", (event.vehicle_plate or "").upper()).split())[:16]
    if plate:
        kept["plate"] = plate
    if event.eta is not None and event.eta.tzinfo is not None:
        kept["eta"] = event.eta.astimezone(UTC).isoformat()
    return {"courier": kept} if kept else {}


def note_courier(record: ServiceRequest, courier: dict | None) -> None:
    """Put what a report of the booking the request holds says of its courier on the
    request (``gateway.public`` shows it); a report that says nothing changes nothing."""
    if not courier:
        return
    if courier.get("first_name"):
        record.courier_first_name = courier["first_name"][:30]
    if courier.get("plate"):
        record.courier_plate = courier["plate"][:16]
    if courier.get("eta"):
        with contextlib.suppress(ValueError):
            record.courier_eta = datetime.fromisoformat(courier["eta"])
def sealed_details(event: ProviderEvent) -> dict:
    """What a report's inbox row keeps sealed: its details, and its proof links and
    delivery time (links to a recipient's doorstep are personal data)."""
    details = {**event.details, **courier_of(event)}
    if event.proof_urls:
        details["proof_urls"] = list(event.proof_urls)
    if event.delivered_at is not None:
        details["delivered_at"] = event.delivered_at.isoformat()
    return details


def find_attempt(session, row: ProviderEventRecord) -> CourierAttempt | None:
    conditions = []
    if row.provider_reference:
        conditions.append(CourierAttempt.provider_reference == row.provider_reference)
    if row.our_reference:
        conditions.append(CourierAttempt.reference == row.our_reference)
    if not conditions:
        return None
    return session.scalars(select(CourierAttempt).where(
        CourierAttempt.courier == row.courier, or_(*conditions))).first()


def earlier_unapplied_of(session, event_ids: list[int]) -> dict[int, list[int]]:
    """For each of these reports not applied yet, the ids of the reports about the same
    booking that came before it and are not applied yet either, oldest first; in one look
    at the unapplied reports, whatever the number of reports (behind a backlog of thousands,
    a look each made every report cost more the longer the backlog).
    :return: report id -> earlier ids (an applied or unknown report is left out)"""
    columns = (ProviderEventRecord.id, ProviderEventRecord.courier,
               ProviderEventRecord.provider_reference, ProviderEventRecord.our_reference)
    rows = [r for r in session.execute(select(*columns).where(
        ProviderEventRecord.id.in_(event_ids), ProviderEventRecord.processed_at.is_(None)))
        if r.provider_reference or r.our_reference]
    if not rows:
        return {}
    by_provider = {r.provider_reference for r in rows if r.provider_reference}
    by_ours = {r.our_reference for r in rows if r.our_reference}
    same = []
    if by_provider:
        same.append(ProviderEventRecord.provider_reference.in_(by_provider))
    if by_ours:
        same.append(ProviderEventRecord.our_reference.in_(by_ours))
    unapplied = session.execute(select(*columns).where(
        ProviderEventRecord.processed_at.is_(None),
        ProviderEventRecord.courier.in_({r.courier for r in rows}),
        ProviderEventRecord.id < max(r.id for r in rows), or_(*same))
        .order_by(ProviderEventRecord.id)).all()
    return {row.id: [u.id for u in unapplied if u.courier == row.courier and u.id < row.id and (
        (row.provider_reference and u.provider_reference == row.provider_reference)
        or (row.our_reference and u.our_reference == row.our_reference))] for row in rows}


def request_of_report(gateway, event_id: int) -> tuple[str | None, str | None]:
    """The request a report is about, as (id, correlation id) for its unit of work;
    ``(None, None)`` when it matches none (yet)."""
    with gateway.db.read() as session:
        row = session.get(ProviderEventRecord, event_id)
        if row is None:
            return None, None
        if row.request_id is not None:
            record = session.get(ServiceRequest, row.request_id)
        else:
            attempt = find_attempt(session, row)
            record = session.get(ServiceRequest, attempt.request_id) if attempt else None
        return (record.id, record.correlation_id) if record is not None else (None, None)


def apply_in_order(gateway, event_id: int, earlier: list[int] | None = None) -> str:
    """Apply a report after the earlier unapplied reports of its booking (another worker
    may hold them in its batch: whichever comes first applies them, the other finds them
    done). An earlier report that cannot be applied now is left to its own job and does not
    hold this one up.

    :param earlier: those reports, when the caller has looked them up
        (:func:`earlier_unapplied_of`)
    :raises EventNotMatchedYet: and whatever applying ``event_id`` itself raises
    """
    if earlier is None:
        with gateway.db.read() as session:
            earlier = earlier_unapplied_of(session, [event_id]).get(event_id, [])
    for earlier_id in earlier:
        try:
            apply_provider_event(gateway, earlier_id)
        except Exception as exc:     # its own job (or the batch that holds it) tries again
            log.info("earlier report %s not applied before %s (%s)", earlier_id, event_id,
                     type(exc).__name__)
    return apply_provider_event(gateway, event_id)


#: how long one report job works before another carries on: between the two, a worker takes
#: what waits on the queues before ``reports``
REPORT_SLICE_SECONDS = 5.0


def work_the_inbox(gateway, apply_one) -> dict[str, int]:
    """The report job: apply what :data:`REPORTS` lists, ``jobs.report_batch_size`` at a
    time, until it is empty (or the job has worked :data:`REPORT_SLICE_SECONDS`, or half its
    time; then another job carries on). A dispatch job waiting stops it after the report in
    hand: the rest of its chunk goes back to the head of the list and another report job
    carries on, so a booking never waits behind a slice of reports (with every worker in
    one, it waited up to a whole slice).

    :param apply_one: ``(event id, earlier unapplied report ids) -> outcome``, applying one
        report in its own transaction (after those) and handing it to its own job when that
        fails (``gateway.jobs``)
    :return: outcomes counted
    """
    settings = gateway.settings["jobs"]
    REPORTS.started(gateway)
    size = settings["report_batch_size"] or 1
    budget = time.monotonic() + min(settings["job_timeout"] / 2, REPORT_SLICE_SECONDS)
    counted: dict[str, int] = {}
    while True:
        ids = REPORTS.take(gateway, size)
        if not ids:
            return counted
        if REPORTS.length(gateway.redis) or time.monotonic() > budget:
            REPORTS.schedule(gateway)           # more waiting: let another worker join in
        chunk = sorted({int(i) for i in ids if i.isdigit()})
        try:
            with gateway.db.read() as session:
                earlier = earlier_unapplied_of(session, chunk)
        except SQLAlchemyError:     # the database, briefly away: each report looks for itself
            earlier = None
        tried: set[int] = set()
        for index, event_id in enumerate(chunk):
            # the chunk's own earlier reports were just tried, in order: not again
            before = None if earlier is None else \
                [i for i in earlier.get(event_id, ()) if i not in tried]
            outcome = apply_one(event_id, before)
            tried.add(event_id)
            counted[outcome] = counted.get(outcome, 0) + 1
            if dispatch_waiting(gateway):
                rest = chunk[index + 1:]
                if rest:
                    REPORTS.give_back(gateway, rest)
                elif REPORTS.length(gateway.redis):
                    REPORTS.schedule(gateway)
                return counted
        if time.monotonic() > budget:
            return counted


def hand_over(gateway, event_id: int, delay: float) -> None:
    """A report a batch could not apply goes to its own job (rq's retries); if Redis is
    away, it stays unapplied in the inbox and the sweep queues it."""
    with contextlib.suppress(RedisError):
        enqueue_job(gateway, "event", event_id, delay=delay)


def apply_provider_event(gateway, event_id: int) -> str:
    with gateway.db.write() as session:
        # Locked: two runs (a batch and its own job, two workers) must not both apply it.
        row = session.get(ProviderEventRecord, event_id, with_for_update=True)
        if row is None or row.processed_at is not None:
            return "nothing to do"
        attempt = find_attempt(session, row)
        record = session.get(ServiceRequest, attempt.request_id) if attempt else None
        row.processed_at = utcnow()
        row.request_id = record.id if record else None
        row.outcome = _apply(gateway, session, row, attempt, record)
        gateway.track(session, Event(
            "provider.event", actor=f"courier:{row.courier}",
            target=f"request:{record.id}" if record else None, outcome=row.outcome,
            details={"raw_status": row.raw_status, "source": row.source,
                     "provider_reference": row.provider_reference},
            correlation_id=record.correlation_id if record else None))
        return row.outcome


class EventNotMatchedYet(Exception):
    """A report for a booking whose answer we have not recorded yet (webhooks can overtake
    the create call's answer): the job runs again later."""


MATCH_PATIENCE = timedelta(minutes=15)


def _apply(gateway, session, row, attempt, record) -> str:
    courier = gateway.couriers.get(row.courier)
    if record is not None and attempt.state == AttemptState.UNKNOWN and row.provider_reference \
            and record.provider is None \
            and getattr(courier, "adopts_reported_bookings", False):
        outcome = _adopt_reported_booking(gateway, session, row, attempt, record)
        if outcome == "cancelled":
            return "adopted"
    # A report may overtake the create call's answer, or come while that answer is still
    # being reconciled (providers that echo our reference): wait for the attempt to resolve.
    unresolved = record is None or AttemptState(attempt.state).unresolved
    if unresolved and utcnow() - row.received_at < MATCH_PATIENCE:
        raise EventNotMatchedYet(f"provider event {row.id} from {row.courier}")
    if record is None:
        log.warning("provider event %s from %s matches no booking", row.id, row.courier)
        return "unmatched"
    source = f"courier:{row.courier}"
    current = attempt.state == AttemptState.BOOKED and record.provider == attempt.courier
    details = gateway.vault.open(row.details_ciphertext) if row.details_ciphertext else {}
    replacement = details.get("new_provider_reference")
    if current and replacement and replacement != attempt.provider_reference:
        previous = attempt.provider_reference
        attempt.provider_reference = record.provider_reference = replacement
        transition(gateway, session, record, Status(record.status), source=f"courier:{row.courier}",
                   raw_status=row.raw_status,
                   detail=f"the provider replaced booking {previous} by {replacement}")
        if row.status is None:
            return "replaced"
        # A poll's answer about the replacement also says where the new booking is: that
        # status is applied below like any other, forward only.
    if not current:
        transition(gateway, session, record, Status(record.status), source=source,
                   raw_status=row.raw_status, detail="report about a booking this request "
                                                     "has left; ignored")
        return "stale"
    note_courier(record, details.get("courier"))
    if "price" in details:
        # What the provider charges, from its own report: before the status, so a delivery
        # settles its budget with it.
        costs.record_final_price(session, record, details.get("price"), details.get("currency"))
    if row.status is None:
        transition(gateway, session, record, Status(record.status), source=source,
                   raw_status=row.raw_status, detail="reported; no status change")
        return "noted"
    status = Status(row.status)
    if status == Status.NO_DRIVER and record.status not in TERMINAL:
        attempt.state, attempt.updated_at = AttemptState.NO_DRIVER.value, utcnow()
        transition(gateway, session, record, Status(record.status), source=source,
                   raw_status=row.raw_status,
                   detail=f"{row.courier} found no driver; trying the next courier")
        record.provider, record.provider_reference = None, None
        record.courier_first_name = record.courier_plate = record.courier_eta = None
        costs.release(session, record)      # the next courier reserves its own quote
        record.pending_job, record.pending_since = "dispatch", utcnow()
        enqueue_after_commit(gateway, session, "dispatch", record.id)
        return "failover"
    proof = {k: v for k, v in (details.get("proof") or {}).items() if v}
    applied = transition(gateway, session, record, status, source=source,
                         raw_status=row.raw_status,
                         detail="proof of delivery recorded" if proof else None)
    if row.source != "poll" and record.status in (Status.DRIVER_ASSIGNED, Status.PICKED_UP) \
            and record.courier_first_name and not record.courier_plate:
        # the report named the courier but not the plate (GO-SEND's webhook; its status
        # answer has it): ask once, for the tracking page and the citizen's notice
        enqueue_after_commit(gateway, session, "poll", record.id)
    if proof and status == Status.DELIVERED and record.proof_ciphertext is None:
        record.proof_ciphertext = gateway.vault.seal(
            {**proof, "courier": row.courier,
             "recorded_at": utcnow().isoformat().replace("+00:00", "Z")})
    if status == Status.DELIVERED and record.status == Status.DELIVERED:
        proofs.note_delivery(gateway, session, record, row.courier,
                             urls=details.get("proof_urls") or (),
                             proof_time=details.get("delivered_at"),
                             reported_at=row.occurred_at or row.received_at)
    return "applied" if applied else "ignored"


def _adopt_reported_booking(gateway, session, row, attempt, record) -> str:
    """A report names, under our reference, the booking an attempt made whose create answer
    was lost (a courier with no lookup and no cancel by our reference: Lalamove): the
    attempt is resolved by it and the request holds it. A request that ended meanwhile
    (cancelled, failed) has it cancelled at the courier."""
    booking = Booking(provider=row.courier, provider_reference=row.provider_reference,
                      raw_status=row.raw_status)
    return adopt_booking(gateway, session, attempt, record, booking, how="found by its report")


def first_listed(gateway) -> int | None:
    """The id at the head of :data:`REPORTS` (the list is oldest first: a stored report with a
    lower id is no longer listed, taken by a report job); None when the list is empty or
    Redis is away."""
    try:
        head = gateway.redis.lindex(REPORTS.key, 0)
    except RedisError:
        return None
    return int(head) if head and head.isdigit() else None


def reports_waiting(gateway, session, courier: str, references) -> set[str]:
    """Which of these bookings (provider references at ``courier``) have reports stored and
    not applied yet that wait their turn: still listed for a report job, or stored less than
    ``sweep.stale_after_seconds`` ago. Those are not late, and a poll would only add one more
    report behind them (one scan of the unapplied reports, whatever the number of bookings).
    A report older than that and no longer listed (taken by a worker that was killed, or left
    to its own job's retries) holds no poll back: the poll's report applies it."""
    references = {r for r in references if r}
    if not references:
        return set()
    stale_before = utcnow() - timedelta(seconds=gateway.settings["sweep"]["stale_after_seconds"])
    head = first_listed(gateway)
    waiting = [ProviderEventRecord.received_at > stale_before]
    if head is not None:
        waiting.append(ProviderEventRecord.id >= head)
    return set(session.scalars(select(ProviderEventRecord.provider_reference).distinct().where(
        ProviderEventRecord.processed_at.is_(None), ProviderEventRecord.courier == courier,
        ProviderEventRecord.provider_reference.in_(references), or_(*waiting))))


def poll(gateway, request_id: str) -> str:
    """Ask the courier that holds a request for its status; store the answer as a report.
    Not while reports of its booking wait to be applied (:func:`reports_waiting`)."""
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.provider is None or record.status in TERMINAL:
            return "nothing to do"
        courier_name, reference = record.provider, record.provider_reference
        if reports_waiting(gateway, session, courier_name, [reference]):
            return "reports waiting"
    courier = gateway.couriers.get(courier_name)
    if courier is None:
        return "courier disabled"
    try:
        event = courier.get_status(reference)
    except NotImplementedError:
        return "not pollable"
    except CourierError as exc:
        log.info("poll of %s at %s failed: %s", request_id, courier_name, type(exc).__name__)
        raise
    new_ids, _dupes = store_events(gateway, courier_name, [event], source="poll")
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        record.updated_at = utcnow()  # polled now: not due again for a while
    return "new report" if new_ids else "no change"


def due_for_polling(gateway, limit: int = 200) -> list[str]:
    """Requests a courier holds whose last change is older than ``poll_after_seconds``,
    except those whose reports are stored and wait their turn to be applied
    (:func:`reports_waiting`: they are not late; behind a backlog, polling them would only
    lengthen it)."""
    quiet_since = utcnow() - timedelta(seconds=gateway.settings["dispatch"]["poll_after_seconds"])
    with gateway.db.read() as session:
        due = session.execute(
            select(ServiceRequest.id, ServiceRequest.provider, ServiceRequest.provider_reference)
            .where(ServiceRequest.status.in_([str(s) for s in TRACKED]),
                   ServiceRequest.provider.is_not(None),
                   ServiceRequest.updated_at <= quiet_since)
            .order_by(ServiceRequest.updated_at).limit(limit)).all()
        waiting = {(courier, reference) for courier in {c for _i, c, _r in due}
                   for reference in reports_waiting(
                       gateway, session, courier, [r for _i, c, r in due if c == courier])}
    return [request_id for request_id, courier, reference in due
            if (courier, reference) not in waiting]
