"""Dispatch: from a stored request to exactly one live booking.

Providers have no idempotency keys, so the rule that no request is ever booked twice is kept
here, by the database:

1. every attempt (courier, our reference) is written *before* the provider is called;
2. an attempt whose answer never came (a crash, a timeout, a 5xx on create) is ``unknown``
   and is reconciled by looking the booking up by our reference before anything else is
   tried; a booking found that way is adopted, not made again;
3. "no driver", a rejection or refused credentials move on to the next courier; a temporary
   error is retried at the same courier (rq's backoff) a few times first; a courier whose
   circuit is open is skipped while another can take the order;
4. a request cancelled while it was being booked is cancelled at the courier too.

Everything here runs inside a job; :class:`DispatchRetry` asks rq to run it again later.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from . import costs
from .couriers import Booking, CourierError, CourierNotFound, CourierRejected
from .events import Event
from .models import CourierAttempt, ServiceRequest, utcnow
from .queues import enqueue_after_commit
from .records import transition
from .statuses import UNRESOLVED_ATTEMPTS, AttemptState, Status

log = logging.getLogger(__name__)

# What each attempt state means for the next step (tried again? looked up first? the failure
# code?) is said once, by ``gateway.statuses.AttemptState``; what each courier error leaves,
# by its class (``gateway.couriers``). An attempt ``skipped`` was written but never sent: a
# batch found the courier's circuit open when its turn came (``gateway.batch``).


class DispatchRetry(Exception):
    """Run the dispatch job again later (rq's retry intervals): a temporary error, or an
    unknown outcome to reconcile."""


class WaitForCircuit(DispatchRetry):
    """Every courier left has an open circuit: run again when the first one half-opens. Not
    a failed attempt: the job is queued again for then (``gateway.jobs``) without spending
    one of its retries, however long the cool-down."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


def candidates_for(gateway, order, key_type: str) -> tuple[list[str], dict[str, str]]:
    """Enabled couriers that can take ``order`` and that this key may reach (test keys and
    sandbox mode reach simulators only), and why each other reachable one cannot."""
    live_allowed = key_type == "live" and gateway.settings["mode"] == "live"
    candidates, refused = [], {}
    for name, courier in gateway.couriers.items():
        if not (courier.sandbox or live_allowed):
            continue
        reason = courier.refusal(order)
        if reason is None:
            candidates.append(name)
        else:
            refused[name] = reason
    return candidates, refused


def route(gateway, service, order, key_type: str) -> tuple[list[str], dict[str, str]]:
    """:return: the couriers to try, in order, and the configured ones skipped, with why"""
    candidates, refused = candidates_for(gateway, order, key_type)
    chosen = gateway.pm.hook.choose_couriers(gateway=gateway, service=service, order=order,
                                             candidates=list(candidates)) or []
    configured = gateway.service_settings(service.name).get("couriers") or []
    named = {n for entry in configured for n in ([entry] if isinstance(entry, str) else entry)}
    skipped = {n: why for n, why in refused.items() if not named or n in named}
    # A routing plugin may reorder and narrow, never widen (a test key stays in the sandbox).
    return [name for name in dict.fromkeys(chosen) if name in candidates], skipped


def _audit(gateway, session, record, action, outcome="ok", **details):
    gateway.track(session, Event(action, actor="worker", target=f"request:{record.id}",
                                 outcome=outcome, details=details,
                                 correlation_id=record.correlation_id))


def new_attempt(gateway, session, record: ServiceRequest, courier: str,
                number: int) -> CourierAttempt:
    """Write attempt ``number`` at ``courier`` (committed before the provider is called)."""
    attempt = CourierAttempt(request_id=record.id, courier=courier, attempt_no=number,
                             reference=f"{record.id}-{number}",
                             state=AttemptState.PENDING.value)
    session.add(attempt)
    _audit(gateway, session, record, "courier.attempt", courier=courier,
           attempt=number, reference=attempt.reference)
    return attempt


def _start_attempt(gateway, request_id: str, courier: str) -> CourierAttempt:
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        number = (session.scalar(select(func.count()).select_from(CourierAttempt)
                                 .where(CourierAttempt.request_id == request_id)) or 0) + 1
        attempt = new_attempt(gateway, session, record, courier, number)
        session.flush()
        return attempt


def attempt_failed(exc: Exception) -> tuple[AttemptState, str | None]:
    """The attempt state and detail an error leaves: a courier error says its own
    (:class:`gateway.couriers.CourierError`). An error that is not a courier's (a bug, a
    broken connection mid-answer) leaves the outcome unknown: the booking may exist, so it is
    looked up before anything else is tried."""
    if isinstance(exc, CourierError):
        return exc.attempt_state, exc.attempt_detail()
    return AttemptState.UNKNOWN, str(exc)[:200] or type(exc).__name__


def finish_attempt(gateway, session, attempt: CourierAttempt, record: ServiceRequest,
                   state: AttemptState, detail: str | None = None,
                   timeline: bool = True) -> None:
    """Record how an attempt ended without a booking, in the caller's transaction."""
    state = AttemptState(state)
    attempt.state, attempt.detail, attempt.updated_at = state.value, detail, utcnow()
    _audit(gateway, session, record, "courier.book", outcome=state.value,
           courier=attempt.courier, attempt=attempt.attempt_no)
    if timeline:
        transition(gateway, session, record, Status(record.status),
                   source=f"courier:{attempt.courier}",
                   detail=f"{attempt.courier}: {state.replace('_', ' ')}"
                          + (f" ({detail})" if detail else ""))


def _finish_attempt(gateway, attempt_id: int, state: AttemptState, detail: str | None = None,
                    timeline: bool = True) -> None:
    with gateway.db.write() as session:
        attempt = session.get(CourierAttempt, attempt_id)
        record = session.get(ServiceRequest, attempt.request_id)
        finish_attempt(gateway, session, attempt, record, state, detail, timeline)


def adopt_booking(gateway, session, attempt: CourierAttempt, record: ServiceRequest,
                  booking: Booking, how: str, quote=None) -> str:
    """Make ``booking`` the request's, in the caller's transaction; ``quote`` (the booked
    courier's, if it gave one) becomes the request's quoted cost. :return: the outcome"""
    attempt.state, attempt.updated_at = AttemptState.BOOKED.value, utcnow()
    attempt.provider_reference = booking.provider_reference
    record.provider, record.provider_reference = attempt.courier, booking.provider_reference
    # a new booking: the courier of an earlier one is not coming
    record.courier_first_name = record.courier_plate = record.courier_eta = None
    costs.note_booked_quote(session, record, quote)
    _audit(gateway, session, record, "courier.book", outcome="booked", how=how,
           courier=attempt.courier, attempt=attempt.attempt_no,
           provider_reference=booking.provider_reference)
    cancelled_meanwhile = Status(record.status).terminal
    transition(gateway, session, record, booking.status, source=f"courier:{attempt.courier}",
               raw_status=booking.raw_status,
               detail=f"booked at {attempt.courier} ({booking.provider_reference})"
                      + (f", {how}" if how != "booked" else ""))
    if cancelled_meanwhile:
        # The agency cancelled while we were booking: the booking must not stay live.
        record.pending_job, record.pending_since = "cancel", utcnow()
        enqueue_after_commit(gateway, session, "cancel", record.id)
        return "cancelled"
    record.pending_job, record.pending_since = None, None
    return "booked"


def _adopt_booking(gateway, attempt_id: int, booking: Booking, how: str, quote=None) -> str:
    with gateway.db.write() as session:
        attempt = session.get(CourierAttempt, attempt_id)
        record = session.get(ServiceRequest, attempt.request_id)
        return adopt_booking(gateway, session, attempt, record, booking, how, quote)


ABANDONED = object()


def _look_up(gateway, courier, attempt: CourierAttempt):
    """The booking an unresolved attempt made, None if there is none, or ABANDONED.

    Providers with a lookup by our reference answer directly (GO-SEND). Providers without
    one but with a cancel by our reference (Grab) are released: nothing stays live, so a new
    attempt is safe. A provider with neither may still report the booking by webhook (which
    then matches the attempt); after ``reconcile_patience_seconds`` the attempt is
    abandoned and that courier is not tried again for this request.
    """
    try:
        return courier.find_by_reference(attempt.reference)
    except NotImplementedError:
        pass
    try:
        courier.release_by_reference(attempt.reference)
        return None
    except NotImplementedError:
        pass
    patience = gateway.settings["dispatch"]["reconcile_patience_seconds"]
    if (utcnow() - attempt.updated_at).total_seconds() < patience:
        raise DispatchRetry(f"waiting for {attempt.courier} to report {attempt.reference}")
    return ABANDONED


def _reconcile(gateway, attempts: list[CourierAttempt]) -> str | None:
    """Resolve attempts whose answer never came. :return: a result if one was booked."""
    for attempt in attempts:
        if not AttemptState(attempt.state).unresolved:
            continue
        courier = gateway.couriers.get(attempt.courier)
        if courier is None:
            _finish_attempt(gateway, attempt.id, AttemptState.REJECTED,
                            "courier no longer enabled")
            continue
        try:
            booking = _look_up(gateway, courier, attempt)
        except CourierNotFound:
            booking = None
        except CourierError as exc:
            raise DispatchRetry(f"cannot yet reconcile {attempt.reference}: {exc}") from exc
        if booking is ABANDONED:
            _finish_attempt(gateway, attempt.id, AttemptState.ABANDONED,
                            "no answer and no way to look it up; trying another courier")
            continue
        if booking is not None:
            return _adopt_booking(gateway, attempt.id, booking, how="found by our reference")
        _finish_attempt(gateway, attempt.id, AttemptState.NOT_FOUND,
                        "no booking under our reference", timeline=False)
    return None


def _reason_so_far(attempts: list[CourierAttempt]) -> str:
    """The failure code if no courier is left: the last attempt's (a batch or an earlier run
    of this job may have made it), or none tried."""
    for attempt in sorted(attempts, key=lambda a: a.attempt_no, reverse=True):
        code = AttemptState(attempt.state).failure_code
        if code:
            return code
    return "no_courier_available"


def _why(exc: Exception) -> str:
    return exc.outcome if isinstance(exc, CourierError) else type(exc).__name__


def _note(gateway, request_id: str, detail: str) -> None:
    """A timeline entry that changes nothing (a quote that failed, ...)."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        transition(gateway, session, record, Status(record.status), source="routing",
                   detail=detail)


def _budget_exhausted(gateway, request_id: str) -> str:
    """A budget had no room when the request's turn came (another request took the last of
    it): hold or refuse it, as the service's ``on_budget_exhausted`` says."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if costs.on_exhausted(gateway, record.service) == "hold":
            transition(gateway, session, record, Status.HELD_FOR_BUDGET, source="budget",
                       detail="the agency's budget for this service is used up; "
                              "waiting for approval")
            record.pending_job, record.pending_since = None, None
            return "held_for_budget"
        transition(gateway, session, record, Status.FAILED, source="budget",
                   detail="the agency's budget for this service is used up",
                   failure_code="budget_exhausted")
        return "failed"


def _apply_policy(gateway, service, request_id: str, order,
                  chosen: list[str]) -> tuple[list[str], dict, list[str]]:
    """Order ``chosen`` by the service's ``routing_policy`` (``gateway.costs``): for
    ``cheapest`` and ``fastest`` every candidate whose circuit is closed is asked for a quote
    first. :return: the order, the quotes asked (courier -> Quote or error), timeline notes"""
    policy = costs.policy_of(gateway, service.name)
    if policy == "ordered" or len(chosen) < 2:
        return chosen, {}, []
    asked = [n for n in chosen if not gateway.circuits.is_open(n)]
    quotes = costs.ask_quotes(gateway, request_id, order, asked)
    target = gateway.service_settings(service.name).get("target_minutes")
    ordered = costs.order_by_policy(chosen, quotes, policy, target)
    failed = sorted(n for n, q in quotes.items() if not costs.usable(q))
    notes = [f"{policy}: trying {', '.join(ordered)}"
             + (f" (no quote from {', '.join(failed)})" if failed else "")]
    return ordered, quotes, notes


def dispatch(gateway, request_id: str) -> str:
    """Book the request with the first courier that takes it. :return: the outcome."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.pending_job != "dispatch":
            return "nothing to do"
        service = gateway.services.get(record.service)
        if service is None:
            transition(gateway, session, record, Status.FAILED, source="worker",
                       detail="the service is no longer installed",
                       failure_code="service_unavailable")
            return "failed"
        if record.status == Status.HELD_FOR_BUDGET:
            record.pending_job, record.pending_since = None, None
            return "held_for_budget"
        if record.status == Status.RECEIVED:
            transition(gateway, session, record, Status.DISPATCHING, source="worker")
        data = gateway.vault.open(record.payload_ciphertext)
        key_type = record.key_type
        attempts = session.scalars(select(CourierAttempt)
                                   .where(CourierAttempt.request_id == request_id)
                                   .order_by(CourierAttempt.attempt_no)).all()

    reconciled = _reconcile(gateway, attempts)
    if reconciled:
        return reconciled
    with gateway.db.read() as session:
        attempts = session.scalars(select(CourierAttempt)
                                   .where(CourierAttempt.request_id == request_id)).all()
    order = service.build_order(data, gateway.service_configs.get(service.name, {}),
                                reference=request_id)
    max_temporary = gateway.settings["dispatch"]["temporary_tries_per_courier"]
    reason, waiting_for_circuit = _reason_so_far(attempts), []
    chosen, skipped = route(gateway, service, order, key_type)
    chosen, quotes, notes = _apply_policy(gateway, service, request_id, order, chosen)
    if skipped or notes:
        with gateway.db.write() as session:
            record = session.get(ServiceRequest, request_id)
            for name, why in sorted(skipped.items()):
                transition(gateway, session, record, Status(record.status), source="routing",
                           detail=f"skipped {name}: {why}")
            for note in notes:
                transition(gateway, session, record, Status(record.status), source="routing",
                           detail=note)
    for name in chosen:
        mine = [AttemptState(a.state) for a in attempts if a.courier == name]
        if any(state.final_for_courier for state in mine):
            continue
        temporaries = sum(state.temporary for state in mine)
        if temporaries >= max_temporary:
            continue
        if gateway.circuits.is_open(name):
            waiting_for_circuit.append(gateway.circuits.seconds_until_half_open(name))
            continue
        asked_now = name not in quotes
        if asked_now:
            quotes.update(costs.ask_quotes(gateway, request_id, order, [name]))
        quote = quotes.get(name)
        if isinstance(quote, Exception):
            if asked_now:       # (the policy's note already names those it asked)
                _note(gateway, request_id, f"{name}: no quote ({_why(quote)})")
            if gateway.circuits.is_open(name):
                # The quote call met a failure that took the provider out of rotation.
                waiting_for_circuit.append(gateway.circuits.seconds_until_half_open(name))
                continue
        if not costs.reserve(gateway, request_id,
                             quote.price if costs.usable(quote) else None):
            return _budget_exhausted(gateway, request_id)
        attempt = _start_attempt(gateway, request_id, name)
        try:
            booking = gateway.couriers[name].book(order, attempt.reference)
        except CourierError as exc:
            state, detail = attempt_failed(exc)
            _finish_attempt(gateway, attempt.id, state, detail)
            if state.unresolved:
                raise DispatchRetry(f"{name}: outcome unknown, reconcile first") from exc
            costs.release_by_id(gateway, request_id)
            if state.settles_later and temporaries + 1 < max_temporary:
                raise DispatchRetry(f"{name}: temporary error") from exc
            reason = exc.failure_code or reason
        else:
            return _adopt_booking(gateway, attempt.id, booking, how="booked", quote=quote)
    if waiting_for_circuit:
        raise WaitForCircuit("every remaining courier has an open circuit",
                             min(waiting_for_circuit))
    final = Status.NO_DRIVER if reason == "no_driver" else Status.FAILED
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        transition(gateway, session, record, final, source="worker",
                   detail="no courier could take this request", failure_code=reason)
    return str(final)


def cancel_bookings(gateway, request_id: str) -> str:
    """Cancel the request at the courier that holds it, and release any booking an
    unresolved attempt may have made; then mark the request cancelled."""
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.pending_job != "cancel":
            return "nothing to do"
        provider, reference = record.provider, record.provider_reference
        unresolved = session.scalars(select(CourierAttempt).where(
            CourierAttempt.request_id == request_id,
            CourierAttempt.state.in_(UNRESOLVED_ATTEMPTS))).all()
    if provider is not None:
        try:
            gateway.couriers[provider].cancel(reference)
        except CourierNotFound:
            raise
        except CourierRejected as exc:
            # Refused for good (Lalamove once a driver is on it): the delivery goes on and the
            # request keeps following it; the agency reads why on the timeline.
            with gateway.db.write() as session:
                record = session.get(ServiceRequest, request_id)
                record.pending_job, record.pending_since = None, None
                transition(gateway, session, record, Status(record.status),
                           source=f"courier:{provider}",
                           detail=f"{provider} refused the cancellation ({str(exc)[:160]}); "
                                  "the delivery goes on")
            return "refused"
    for attempt in unresolved:
        courier = gateway.couriers.get(attempt.courier)
        booking, released = None, False
        if courier is not None:
            try:
                booking = courier.find_by_reference(attempt.reference)
            except NotImplementedError:
                # No lookup (Grab): cancel whatever the provider holds under our reference.
                try:
                    courier.release_by_reference(attempt.reference)
                    released = True
                except NotImplementedError:
                    # Neither (Lalamove): the attempt stays unresolved; when the provider
                    # reports the booking under our reference, tracking adopts and cancels it.
                    continue
        if booking is not None:
            courier.cancel(booking.provider_reference)
        released = released or booking is not None
        _finish_attempt(gateway, attempt.id,
                        AttemptState.RELEASED if released else AttemptState.NOT_FOUND,
                        "cancelled with the request" if released else None, timeline=False)
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        record.pending_job, record.pending_since = None, None
        transition(gateway, session, record, Status.CANCELLED,
                   source=f"courier:{provider}" if provider else "worker",
                   detail="cancelled at the courier on the agency's request")
    return "cancelled"
