"""The courier's plate, asked for in batches.

Some providers' webhooks name the driver but leave out the vehicle's plate (GO-SEND's; its
status answer has it), and the citizen's tracking page and "your courier is on the way" notice
want both. So a report that names a driver without a plate lists its request
(``tracking.PLATES``), and a plates job asks the couriers for the requests listed, the way a
dispatch batch books (``gateway.batch``):

1. one read finds which of them still want a plate (a request delivered meanwhile, or whose
   plate came with a later report, wants none);
2. the status questions go out at the same time (``dispatch.batch_concurrency`` threads);
3. one transaction stores the answers as reports (applied by the report jobs like any other:
   forward only, in their booking's order), each call's audit record, and the time each
   request was last polled.

One job per plate made each a job of its own with three write transactions (the call's audit,
the report, the poll's time): under a steady 20 requests a second on the embedded default,
4,900 of them waited on ``default`` when the load ended, the oldest 268 s, and the citizens'
notices waited behind them. A question that fails is not asked again here: the regular polls
of late bookings (``tracking.due_for_polling``) ask again in their time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select, update

from . import context
from .batch import calls_pool
from .couriers import CourierError, ProviderEvent
from .models import ServiceRequest, utcnow
from .tracking import PLATES, TRACKED, ready_report, store_in

log = logging.getLogger(__name__)

#: requests asked about per transaction
PLATES_PER_BATCH = 25
#: how long one plates job works before another carries on
PLATES_SLICE_SECONDS = 5.0


@dataclass
class _Question:
    request_id: str
    correlation_id: str | None
    courier: str
    reference: str
    answer: ProviderEvent | None = None
    outcome: str = "asked"
    call_audits: list = field(default_factory=list)


def ask_for_plates(gateway) -> dict[str, int]:
    """The plates job: :data:`PLATES` a batch at a time until it is empty (or the job has
    worked :data:`PLATES_SLICE_SECONDS`: then another job carries on). :return: outcomes
    counted"""
    return PLATES.work(gateway, PLATES_PER_BATCH, PLATES_SLICE_SECONDS,
                       lambda ids: ask_batch(gateway, ids))


def ask_batch(gateway, request_ids: list[str]) -> list[str]:
    """Ask for the plates of these requests (steps 1 to 3 of the module docstring).
    :return: each request's outcome"""
    with gateway.db.read() as session:
        rows = session.execute(select(
            ServiceRequest.id, ServiceRequest.correlation_id, ServiceRequest.provider,
            ServiceRequest.provider_reference).where(
            ServiceRequest.id.in_(request_ids),
            ServiceRequest.status.in_([str(s) for s in TRACKED]),
            ServiceRequest.provider.is_not(None), ServiceRequest.provider_reference.is_not(None),
            ServiceRequest.courier_first_name.is_not(None),
            ServiceRequest.courier_plate.is_(None))).all()
    questions = [_Question(*row) for row in rows]
    outcomes = ["nothing to do"] * (len(request_ids) - len(questions))
    _ask(gateway, questions)
    answered = [q for q in questions if q.answer is not None]
    with gateway.db.write() as session:
        for question in questions:
            for call in question.call_audits:
                gateway.track(session, call)
        for courier in {q.courier for q in answered}:
            store_in(gateway, session, courier,
                     [ready_report(gateway, courier, q.answer) for q in answered
                      if q.courier == courier], "poll")
        if answered:    # polled now: not due for a late booking's poll for a while
            session.execute(update(ServiceRequest).where(
                ServiceRequest.id.in_([q.request_id for q in answered]))
                .values(updated_at=utcnow()))
    return outcomes + [q.outcome for q in questions]


def _ask(gateway, questions: list[_Question]) -> None:
    """Step 2: the status questions at the same time; nothing written here (the calls'
    audit records are kept for step 3)."""
    if not questions:
        return
    app = current_app._get_current_object()

    def ask(question: _Question) -> None:
        with app.app_context(), context.bound(
                request_id=question.request_id, correlation_id=question.correlation_id,
                job_kind="plate", pending_call_audits=question.call_audits):
            courier = gateway.couriers.get(question.courier)
            if courier is None or gateway.circuits.is_open(question.courier):
                question.outcome = "courier unavailable"
                return
            try:
                question.answer = courier.get_status(question.reference)
            except NotImplementedError:
                question.outcome = "not pollable"
            except CourierError as exc:
                question.outcome = "failed"
                log.info("plate question for %s at %s failed: %s", question.request_id,
                         question.courier, type(exc).__name__)

    list(calls_pool(gateway.settings["dispatch"]["batch_concurrency"]).map(ask, questions))
