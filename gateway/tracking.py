"""Following a booking to its end: provider reports in, forward-only status changes out.

Reports come from webhooks (``gateway.api.webhooks``) and from polling when webhooks are
late. Each is stored in the inbox first, deduplicated by its event key (at-least-once
delivery is normal), then applied by a job. Reports come in bursts (every booking sends
several), so they are applied in batches, like dispatch (``gateway.batch``): a stored report's
id goes on a Redis list (:data:`REPORTS`) and one report job takes up to
``jobs.report_batch_size`` of them (the ``LPOP`` is the claim: no two workers take one id),
applying them in one transaction, oldest first, each in a savepoint of its own
(:func:`apply_together`), so one bad report never fails its neighbours (it is rolled back with
the work it planned for after the commit, and handed to its own ``event`` job, with rq's
retries). A report is applied under a lock of its inbox row and only while ``processed_at``
is empty, so a report applied twice (a batch and its own job, two workers) changes nothing;
the earlier unapplied reports of the same booking are applied before it, so a request's
reports keep their order whichever worker took them. A report taken and never applied (a
killed worker) is still unapplied in the database: the sweep queues its own job. What a
report does:

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
from rq import Queue
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from . import context, costs, proofs
from .couriers import Booking, CourierError, ProviderEvent
from .db import gathered_after_commit, is_outage, savepoint
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
    job_spec,
)
from .records import transition
from .statuses import TERMINAL, AttemptState, Status

log = logging.getLogger(__name__)

TRACKED = (Status.BOOKED, Status.DRIVER_ASSIGNED, Status.PICKED_UP)
#: stored reports waiting for a report job (see the module docstring)
REPORTS = WorkList("gateway:reports:ready", "gateway:reports:batch-scheduled",
                   QueueNames.REPORTS, "gateway.jobs.apply_reports", "reports-batch")
#: requests whose courier's plate a report left out, for a plates job (``gateway.plates``)
PLATES = WorkList("gateway:plates:ready", "gateway:plates:batch-scheduled",
                  QueueNames.DEFAULT, "gateway.jobs.ask_for_plates", "plates-batch")


#: ``session.info`` key: the reports this transaction stores, listed for their jobs at commit
NEW_REPORTS = "tracking_new_reports"
#: ``session.info`` key: ``(courier, event key)`` of the reports this transaction stores (a
#: group's, not flushed yet: a query would not find them)
NEW_REPORT_KEYS = "tracking_new_report_keys"
#: ``session.info`` key: the requests this transaction found wanting their courier's plate
WANT_PLATES = "tracking_want_plates"


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
    reports = [ready_report(gateway, courier, event) for event in events]

    def store(session) -> tuple[list[ProviderEventRecord], int]:
        return store_in(gateway, session, courier, reports, source)

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


def ready_report(gateway, courier: str, event: ProviderEvent) -> _Report:
    """A report as its inbox row will hold it (fitted, its details sealed): work done
    before the transaction that stores it (:func:`store_in`)."""
    event = fit_event(event)
    if "unfitted" in event.details:
        log.warning("a report from %s had values its inbox row cannot hold (%s): stored "
                    "fitted, the originals sealed beside it", courier,
                    ", ".join(sorted(event.details["unfitted"])))
    details = sealed_details(event)
    return _Report(event, gateway.vault.seal(details) if details else None)


def store_in(gateway, session, courier: str, reports: list[_Report], source: str
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


@dataclass
class Applied:
    """What became of one report of a batch's transaction (:func:`apply_together`)."""

    event_id: int
    #: ``applied``, ``ignored``, ``stale``, ... (``_apply``); ``nothing to do`` when it was
    #: applied already; None when it failed (``error``)
    outcome: str | None
    #: the request it is about and its correlation id, for its unit of work's log lines
    request_id: str | None = None
    correlation_id: str | None = None
    #: why it was not applied (its savepoint rolled back): ``EventNotMatchedYet`` or a failure
    error: Exception | None = None
    duration_ms: float = 0.0


def apply_together(gateway, chunk: list[int], seconds: float | None = None
                   ) -> tuple[list[Applied], list[int]]:
    """Apply the reports ``chunk`` lists in ONE write transaction, oldest first, each after
    the earlier unapplied reports of its booking (:func:`earlier_unapplied_of`), and each in a
    savepoint of its own (``gateway.db.savepoint``): one that fails is rolled back alone, with
    everything it meant to do after the commit (its callback, its notices, its audit event),
    and its neighbours commit. On SQLite, one writer at a time, the workers then take the
    write lock once per chunk instead of once per report, and the API's writes get their
    turns in between.

    The chunk's rows (and those earlier reports') are locked at once (``FOR UPDATE`` on
    PostgreSQL, in id order); one whose ``processed_at`` is set (another worker, its own job)
    is not applied again. An earlier report outside the chunk that fails is left to whoever
    holds it (its own job, another batch) and does not hold its booking's next one up.

    :param seconds: the transaction ends after the report that takes it past this long
        (from when it holds the chunk's rows: on SQLite, the write lock); what is left of
        the chunk is returned untried
    :return: what became of each report of the chunk tried, and the ids left untried
    :raises: what the transaction raises (the database away): then nothing of it is applied
    """
    results: list[Applied] = []
    with gateway.db.write() as session:
        earlier = earlier_unapplied_of(session, chunk)
        order: dict[int, bool] = {}           # id -> in the chunk, in the order to apply
        for event_id in chunk:
            for earlier_id in earlier.get(event_id, ()):
                order.setdefault(earlier_id, False)
            order[event_id] = True
        rows = {row.id: row for row in session.scalars(
            select(ProviderEventRecord).where(ProviderEventRecord.id.in_(list(order)))
            .order_by(ProviderEventRecord.id).with_for_update()
            .execution_options(populate_existing=True))}
        began, tried = time.monotonic(), 0
        for event_id, in_chunk in order.items():
            applied = _apply_in_savepoint(gateway, session, rows.get(event_id), event_id)
            if not in_chunk:
                if applied.error is not None:
                    log.info("earlier report %s not applied before the next of its booking "
                             "(%s)", event_id, type(applied.error).__name__)
                continue
            results.append(applied)
            tried += 1
            if tried < len(chunk) and seconds is not None \
                    and time.monotonic() - began > seconds:
                break
    return results, chunk[tried:]


def _apply_in_savepoint(gateway, session, row, event_id: int) -> Applied:
    """Apply one locked report in a savepoint of the caller's transaction, as its request's
    unit of work. A failure rolls back the savepoint only; an outage is raised (the whole
    transaction is lost)."""
    if row is None or row.processed_at is not None:
        return Applied(event_id, "nothing to do")
    started = time.monotonic()
    found: tuple[str | None, str | None] = (None, None)
    try:
        with savepoint(session):
            attempt = find_attempt(session, row)
            record = session.get(ServiceRequest, attempt.request_id) if attempt else None
            if record is not None:
                found = (record.id, record.correlation_id)
            with context.bound(request_id=found[0], correlation_id=found[1],
                               job_kind="event"):
                outcome = _apply_locked(gateway, session, row, attempt, record)
    except Exception as exc:
        if is_outage(exc):
            raise
        return Applied(event_id, None, *found, error=exc,
                       duration_ms=round((time.monotonic() - started) * 1000, 1))
    return Applied(event_id, outcome, *found,
                   duration_ms=round((time.monotonic() - started) * 1000, 1))


def apply_in_order(gateway, event_id: int) -> str:
    """Apply one report alone (its own ``event`` job), after the earlier unapplied reports of
    its booking, in one transaction (:func:`apply_together`).

    :raises EventNotMatchedYet: and whatever applying ``event_id`` itself raised
    """
    (applied,), _rest = apply_together(gateway, [event_id])
    if applied.error is not None:
        raise applied.error
    return applied.outcome


#: how long one report job works before another carries on: between the two, a worker takes
#: what waits on the queues before ``reports``
REPORT_SLICE_SECONDS = 5.0
#: a chunk's transaction ends after the report that takes it past this (the rest go back to
#: the head of the list for the next one): on SQLite, the API waits for the write lock that
#: long at most, not for a whole ``jobs.report_batch_size``
REPORT_TRANSACTION_SECONDS = 0.05
#: the pause between two transactions of a report job on SQLite (see ``work_the_inbox``)
REPORTS_BETWEEN_TRANSACTIONS_SECONDS = 0.02


def work_the_inbox(gateway, finished) -> dict[str, int]:
    """The report job: apply what :data:`REPORTS` lists, ``jobs.report_batch_size`` at a
    time, each chunk in one transaction (:func:`apply_together`; one that runs past
    :data:`REPORT_TRANSACTION_SECONDS` commits there, and the rest of its chunk goes back to
    the head of the list), until the list is empty (or the job has worked
    :data:`REPORT_SLICE_SECONDS`, or half its time; then another job carries on). A dispatch
    job waiting stops it after the transaction in hand, and another report job carries on,
    so a booking waits for one transaction at most, never a slice of reports. (Asked after
    each report instead, the question stopped a report job after one report whenever
    requests came in steadily: a dispatch job nearly always waited, and the reports fell
    behind, 15 applied a second of 87 received in a short soak.)

    A report that failed in its chunk is handed to its own ``event`` job (rq's retries) once
    the chunk has committed; a chunk that could not commit (the database away) is handed
    over whole: nothing of it was applied, and each is still unapplied in the database.

    :param finished: ``(event id, outcome, error, Applied | None)``, called for each report
        once its chunk is settled (its log line and metric: ``gateway.jobs``)
    :return: outcomes counted
    """
    settings = gateway.settings["jobs"]
    REPORTS.started(gateway)
    size = settings["report_batch_size"] or 1
    budget = time.monotonic() + min(settings["job_timeout"] / 2, REPORT_SLICE_SECONDS)
    retry_after = job_spec(gateway, "event")[2][0]
    counted: dict[str, int] = {}

    def settle(event_id: int, outcome: str, error=None, applied=None) -> None:
        counted[outcome] = counted.get(outcome, 0) + 1
        finished(event_id, outcome, error, applied)

    while True:
        ids = REPORTS.take(gateway, size)
        if not ids:
            return counted
        if REPORTS.length(gateway.redis) or time.monotonic() > budget:
            REPORTS.schedule(gateway)           # more waiting: let another worker join in
        chunk = sorted({int(i) for i in ids if i.isdigit()})
        try:
            results, rest = apply_together(gateway, chunk, seconds=REPORT_TRANSACTION_SECONDS)
        except Exception as exc:    # the database, briefly away: their own jobs retry
            for event_id in chunk:
                hand_over(gateway, event_id, retry_after)
                settle(event_id, "handed over", exc)
            return counted          # the rest stay listed (for the next report job)
        for applied in results:
            if applied.error is None:
                settle(applied.event_id, applied.outcome, None, applied)
                continue
            hand_over(gateway, applied.event_id, retry_after)
            # not matched yet is no error: its create answer is on its way
            settle(applied.event_id, "handed over",
                   None if isinstance(applied.error, EventNotMatchedYet) else applied.error,
                   applied)
        if rest:                                # the next transaction (or job) takes them
            REPORTS.give_back(gateway, rest)
        if time.monotonic() > budget or _dispatch_waits(gateway):
            if REPORTS.length(gateway.redis):
                REPORTS.schedule(gateway)
            return counted
        if gateway.db.is_sqlite and REPORTS_BETWEEN_TRANSACTIONS_SECONDS:
            # SQLite has one writer: a writer waiting its turn (the API storing creates and
            # webhooks, ``gateway.writeturns``) is woken when the lock is let go, but this
            # job, still running, took it back first; measured with a writer process beside
            # a report job, it got ~20 transactions a second without the gap, ~100 with it
            time.sleep(REPORTS_BETWEEN_TRANSACTIONS_SECONDS)


def _dispatch_waits(gateway) -> bool:
    try:
        return dispatch_waiting(gateway)
    except RedisError:
        return False


def hand_over(gateway, event_id: int, delay: float) -> None:
    """A report a batch could not apply goes to its own job (rq's retries); if Redis is
    away, it stays unapplied in the inbox and the sweep queues it."""
    with contextlib.suppress(RedisError):
        enqueue_job(gateway, "event", event_id, delay=delay)


def _apply_locked(gateway, session, row, attempt, record) -> str:
    """Apply a report whose inbox row the caller's transaction has locked."""
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
        # answer has it): asked for, for the tracking page and the citizen's notice, with
        # the other requests waiting for theirs (``gateway.plates``)
        gathered_after_commit(session, WANT_PLATES,
                              lambda ids: PLATES.push(gateway, list(dict.fromkeys(ids)))
                              ).append(record.id)
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


#: the longest a report backlog's age holds polls back (:func:`backlog_age`): a report stored
#: before a backlog that never drains (no worker takes the reports queue) holds its
#: booking's poll back this long, plus ``sweep.stale_after_seconds``, at most
POLL_HOLD_LIMIT = timedelta(minutes=10)


def backlog_age(gateway, session) -> timedelta:
    """How long the reports waiting for a worker have waited: since the oldest report still
    listed for a report job was received (the list is oldest first), or since the oldest job
    of the queue that reports handed to their own jobs wait on was queued, whichever is
    longer; at most :data:`POLL_HOLD_LIMIT`; zero when nothing waits (or Redis is away).

    A report taken by a worker that was killed is no longer listed and has no job: it is not
    part of the backlog, and so never makes it older."""
    ages = [timedelta(0)]
    now = utcnow()
    head = first_listed(gateway)
    if head is not None:
        received = session.scalar(select(ProviderEventRecord.received_at).where(
            ProviderEventRecord.id == head))
        if received is not None:
            ages.append(now - received)
    with contextlib.suppress(RedisError):
        queue = Queue(job_spec(gateway, "event")[0], connection=gateway.redis)
        for oldest in queue.get_job_ids(0, 1):
            job = queue.fetch_job(oldest)
            if job is not None and job.enqueued_at is not None:
                enqueued = job.enqueued_at
                ages.append(now - (enqueued if enqueued.tzinfo else
                                   enqueued.replace(tzinfo=UTC)))
    return min(max(ages), POLL_HOLD_LIMIT)


def reports_waiting(gateway, session, courier: str, references) -> set[str]:
    """Which of these bookings (provider references at ``courier``) have reports stored and
    not applied yet that wait their turn: the oldest of them is younger than the report
    backlog (:func:`backlog_age`) plus ``sweep.stale_after_seconds``. Reports are applied
    oldest first, so its turn comes no later than the backlog's: it is not late, and a poll
    would only add one more report behind it (one scan of the unapplied reports, whatever
    the number of bookings; with no backlog, a report stored less than
    ``sweep.stale_after_seconds`` ago holds its poll back, as before).

    A report older than that (taken by a worker that was killed, or left to its own job's
    retries) holds no poll back: the poll's report applies it. Such a report is not part of
    the backlog (not listed, no job waiting), so it holds a poll back only while the backlog
    that was in front of it has not drained, and never longer than :data:`POLL_HOLD_LIMIT`
    plus ``sweep.stale_after_seconds``."""
    references = {r for r in references if r}
    if not references:
        return set()
    margin = timedelta(seconds=gateway.settings["sweep"]["stale_after_seconds"])
    waiting_since = utcnow() - backlog_age(gateway, session) - margin
    oldest = func.min(ProviderEventRecord.received_at)
    return set(session.scalars(
        select(ProviderEventRecord.provider_reference).where(
            ProviderEventRecord.processed_at.is_(None), ProviderEventRecord.courier == courier,
            ProviderEventRecord.provider_reference.in_(references))
        .group_by(ProviderEventRecord.provider_reference).having(oldest > waiting_since)))


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
