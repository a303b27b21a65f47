"""Dispatch in batches: the fast path from accepted requests to their first bookings.

rq spends a few milliseconds of its own on every job (its bookkeeping in Redis), more than a
booking costs once the database work around it is shared. So the API does not enqueue one job
per request: :func:`submit` appends the request's id to a Redis list and makes sure a batch
job is queued. A batch job takes up to ``dispatch.batch_size`` ids at a time and, for every
request that is simply waiting for its first booking:

1. works out its order and courier without the write lock, then in one transaction moves it
   to ``dispatching`` and writes its first attempt (written before the provider is called, as
   always: ``gateway.dispatch``);
2. calls the couriers at the same time (``dispatch.batch_concurrency`` threads);
3. records every answer, a few requests a transaction (:data:`RECORD_SLICE`); a booking is
   adopted exactly as the one-by-one path adopts it.

Everything else is handed to the request's own ``dispatch`` job, the careful path of
``gateway.dispatch``: a request with attempts already, a courier that refused or failed, an
answer that never came (looked up by our reference before anything else is tried). Each
request is worked on under the lock its own job takes (``queues.request_lock``), so the two
paths never book one request at once. The database stays the source of truth: a request taken
off the list and never booked (a killed worker, a Redis that lost the list) is still marked as
owed, and the sweep enqueues its own job.

Several workers share the list: a batch job that leaves ids behind queues another, so idle
workers join in.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flask import current_app
from redis.exceptions import LockError, RedisError
from sqlalchemy import select

from . import context, costs
from .db import gathered_after_commit
from .dispatch import adopt_booking, attempt_failed, finish_attempt, new_attempt, route
from .events import Event
from .models import Budget, CourierAttempt, ServiceRequest
from .queues import QueueNames, WorkList, enqueue_job, request_lock
from .records import transition
from .statuses import AttemptState, Status

log = logging.getLogger(__name__)

READY_KEY = "gateway:dispatch:ready"
SCHEDULED_KEY = "gateway:dispatch:batch-scheduled"
BATCH_JOB = "gateway.jobs.dispatch_batch"
#: the accepted requests waiting for a batch job
READY = WorkList(READY_KEY, SCHEDULED_KEY, QueueNames.DISPATCH, BATCH_JOB, "dispatch-batch")


def dispatch_after_commit(gateway, session, request_id: str) -> None:
    """Have a request stored in ``session``'s transaction dispatched once that commits.

    The requests of one transaction (a group commit: ``gateway.group_commit``) are listed
    together, in one Redis round trip. If Redis is unreachable then, the requests stay
    marked as owed (``pending_job``) and the sweep enqueues them later.
    """
    gathered_after_commit(session, "dispatch_after_commit",
                          lambda owed: _submit(gateway, owed)).append(request_id)


def _submit(gateway, request_ids: list[str]) -> None:
    if not gateway.settings["dispatch"]["batch_size"]:
        for request_id in request_ids:
            enqueue_job(gateway, "dispatch", request_id)
        return
    READY.push(gateway, request_ids)


def schedule(gateway) -> bool:
    """Queue a batch job unless one is queued and not started yet. :return: True if queued"""
    return READY.schedule(gateway)


def work_the_list(gateway) -> dict[str, int]:
    """The batch job: book what the list holds, a batch at a time, until it is empty (or the
    job has used half its time; then another job carries on). :return: outcomes counted"""
    settings = gateway.settings
    READY.started(gateway)
    size = settings["dispatch"]["batch_size"] or 1
    budget = time.monotonic() + settings["jobs"]["job_timeout"] / 2
    counted: dict[str, int] = {}
    while True:
        ids = READY.take(gateway, size)
        if not ids:
            return counted
        if READY.length(gateway.redis) or time.monotonic() > budget:
            schedule(gateway)           # more waiting: let another worker join in
        for outcome, n in dispatch_batch(gateway, ids).items():
            counted[outcome] = counted.get(outcome, 0) + n
        if time.monotonic() > budget:
            return counted


class CircuitOpenedMeanwhile(Exception):
    """The courier's circuit opened between planning a call and making it: not called."""


@dataclass
class _Planned:
    request_id: str
    correlation_id: str | None
    attempt: CourierAttempt
    order: object
    quote: object = None
    answer: object = None
    error: Exception | None = None
    call_audits: list = field(default_factory=list)


def dispatch_batch(gateway, request_ids: list[str]) -> dict[str, int]:
    """Book the first try of each request, together. :return: outcomes counted"""
    locks = {}
    for request_id in dict.fromkeys(request_ids):
        lock = request_lock(gateway, "dispatch", request_id)
        if lock.acquire(blocking=False):
            locks[request_id] = lock
        # else: its own job is working on it right now
    handed_over: list[tuple[str, float]] = []      # (request id, after how many seconds)
    outcomes: dict[str, int] = {}
    try:
        planned = _plan(gateway, list(locks), handed_over)
        _call_couriers(gateway, planned)
        for outcome in _record(gateway, planned, handed_over):
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        for lock in locks.values():
            with contextlib.suppress(LockError, RedisError):
                lock.release()
    for request_id, delay in handed_over:
        with contextlib.suppress(RedisError):   # still marked as owed: the sweep enqueues it
            enqueue_job(gateway, "dispatch", request_id, delay=delay)
    for outcome, n in outcomes.items():
        gateway.metrics.count_job("dispatch", outcome, n)
    if handed_over:
        outcomes["handed over"] = len(handed_over)
    return outcomes


#: at most this many requests' answers are recorded in one transaction: on SQLite a write
#: transaction holds the one write lock, and a batch's 25 answers held it 67 ms on average
#: (313 ms at worst) while the API's new requests waited for it
RECORD_SLICE = 8


@dataclass
class _Prepared:
    """What a request's first attempt needs, worked out before the write transaction."""

    order: object
    courier: str
    skipped: dict


def _prepare(gateway, request_ids: list[str], handed_over: list) -> dict[str, _Prepared]:
    """Step 1a, without the write lock: which requests only wait for their first attempt,
    their orders (decrypted, built by their service) and their couriers."""
    prepared: dict[str, _Prepared] = {}
    open_circuit: dict[str, bool] = {}
    with gateway.db.read() as session:
        records = session.scalars(select(ServiceRequest).where(
            ServiceRequest.id.in_(request_ids))).all()
        tried = set(session.scalars(select(CourierAttempt.request_id).where(
            CourierAttempt.request_id.in_(request_ids))))
        # Requests whose booking reserves a budget, or whose service routes by quotes, take
        # the careful path (gateway.dispatch, gateway.costs).
        budgeted = {(row.agency_id, row.service) for row in session.execute(
            select(Budget.agency_id, Budget.service).where(
                Budget.agency_id.in_({r.agency_id for r in records})))}
    for record in records:
        if record.pending_job != "dispatch":
            continue                                    # done or cancelled meanwhile
        service = gateway.services.get(record.service)
        if service is None or record.status != Status.RECEIVED or record.id in tried \
                or costs.policy_of(gateway, record.service) != "ordered" \
                or (record.key_type == "live" and (record.agency_id, record.service) in budgeted):
            handed_over.append((record.id, 0))
            continue
        data = gateway.vault.open(record.payload_ciphertext)
        order = service.build_order(data, gateway.service_configs.get(service.name, {}),
                                    reference=record.id)
        chosen, skipped = route(gateway, service, order, record.key_type)
        for name in chosen:
            if name not in open_circuit:
                open_circuit[name] = gateway.circuits.is_open(name)
        courier = next((name for name in chosen if not open_circuit[name]), None)
        if courier is None:
            handed_over.append((record.id, 0))          # it knows how to wait or fail
            continue
        prepared[record.id] = _Prepared(order, courier, skipped)
    return prepared


def _plan(gateway, request_ids: list[str], handed_over: list) -> list[_Planned]:
    """Step 1: in one transaction, the first attempt of each request that only waits for it
    (worked out before, :func:`_prepare`: the write transaction only checks that nothing
    changed meanwhile and writes)."""
    if not request_ids:
        return []
    prepared = _prepare(gateway, request_ids, handed_over)
    if not prepared:
        return []
    planned = []
    with gateway.db.write() as session:
        records = session.scalars(select(ServiceRequest).where(
            ServiceRequest.id.in_(list(prepared)))).all()
        tried = set(session.scalars(select(CourierAttempt.request_id).where(
            CourierAttempt.request_id.in_(list(prepared)))))
        for record in records:
            if record.pending_job != "dispatch" or record.status != Status.RECEIVED \
                    or record.id in tried:
                continue                        # its own job or a cancel came first
            ready = prepared[record.id]
            transition(gateway, session, record, Status.DISPATCHING, source="worker")
            for name, why in sorted(ready.skipped.items()):
                transition(gateway, session, record, Status.DISPATCHING, source="routing",
                           detail=f"skipped {name}: {why}")
            attempt = new_attempt(gateway, session, record, ready.courier, 1)
            planned.append(_Planned(record.id, record.correlation_id, attempt, ready.order))
    return planned


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def calls_pool(size: int) -> ThreadPoolExecutor:
    """The worker process's threads for provider calls made at the same time (a batch's
    bookings, ``gateway.plates``'s status questions)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != size:
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="dispatch")
        return _pool


def _call_couriers(gateway, planned: list[_Planned]) -> None:
    """Step 2: the provider calls, at the same time. Nothing here writes to the database: the
    audit record each call leaves is kept for step 3."""
    if not planned:
        return
    app = current_app._get_current_object()

    def book(item: _Planned) -> None:
        with app.app_context(), context.bound(
                request_id=item.request_id, correlation_id=item.correlation_id,
                job_kind="dispatch", pending_call_audits=item.call_audits):
            try:
                # Calls wait for a free thread: a courier failing meanwhile may have opened
                # its circuit, and then the rest of the batch goes elsewhere (its own job).
                courier = gateway.couriers[item.attempt.courier]
                if gateway.circuits.is_open(item.attempt.courier):
                    raise CircuitOpenedMeanwhile
                if courier.gives_quotes():
                    try:
                        item.quote = courier.quote(item.order)
                    except Exception as exc:   # recorded; a quote never blocks a booking
                        item.quote = exc
                        if gateway.circuits.is_open(item.attempt.courier):
                            raise     # it took the provider out (credentials): its outcome
                item.answer = courier.book(item.order, item.attempt.reference)
            except Exception as exc:   # recorded as the attempt's outcome, then handed over
                item.error = exc

    concurrency = gateway.settings["dispatch"]["batch_concurrency"]
    list(calls_pool(concurrency).map(book, planned))


def _record(gateway, planned: list[_Planned], handed_over: list) -> list[str]:
    """Step 3: every answer, :data:`RECORD_SLICE` requests a transaction (the write lock is
    let go between them; a crash between two leaves the later attempts as a crash before any
    would: recorded before the call, looked up by our reference). :return: each request's
    outcome"""
    outcomes: list[str] = []
    for start in range(0, len(planned), RECORD_SLICE):
        last = start + RECORD_SLICE >= len(planned)
        outcomes += _record_slice(gateway, planned[start:start + RECORD_SLICE], handed_over,
                                  batch=(len(planned), outcomes) if last else None)
    return outcomes


def _record_slice(gateway, planned: list[_Planned], handed_over: list,
                  batch: tuple[int, list[str]] | None) -> list[str]:
    """One transaction of :func:`_record`; the last (``batch``: the batch's size and the
    outcomes recorded before) also audits the batch."""
    outcomes = []
    retry_after = (gateway.settings["jobs"]["intervals"] or [0])[0]
    with gateway.db.write() as session:
        ids = [item.request_id for item in planned]
        records = {r.id: r for r in session.scalars(select(ServiceRequest).where(
            ServiceRequest.id.in_(ids)))}
        attempts = {a.id: a for a in session.scalars(select(CourierAttempt).where(
            CourierAttempt.id.in_([item.attempt.id for item in planned])))}
        for item in planned:
            record, attempt = records[item.request_id], attempts[item.attempt.id]
            for call in item.call_audits:
                gateway.track(session, call)
            if item.quote is not None:
                costs.record_quotes(session, record.id, {attempt.courier: item.quote})
            if item.error is None:
                outcome = adopt_booking(gateway, session, attempt, record, item.answer,
                                        how="booked", quote=item.quote)
            else:
                state, detail = (AttemptState.SKIPPED, "its circuit opened before the call") \
                    if isinstance(item.error, CircuitOpenedMeanwhile) \
                    else attempt_failed(item.error)
                finish_attempt(gateway, session, attempt, record, state, detail)
                # A temporary error or an answer that never came is tried again (or looked
                # up) after the first retry interval, as when its own job meets it.
                handed_over.append((record.id, retry_after if state.settles_later else 0))
                outcome = state.value
            outcomes.append(outcome)
            log.info("dispatch of %s (batch): %s", record.id, outcome,
                     extra={"outcome": outcome, "request_id": record.id, "job_kind": "dispatch",
                            "correlation_id": record.correlation_id})
        if batch is not None:
            size, before = batch
            booked = (before + outcomes).count("booked")
            gateway.track(session, Event("job.dispatch_batch", actor="worker", outcome="ok",
                                         details={"requests": size, "booked": booked,
                                                  "handed_over": size - booked}))
    return outcomes
