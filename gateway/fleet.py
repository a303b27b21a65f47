"""The own-fleet dispatch list: Gancang Aron staff take, pick up and deliver bookings.

Shared by the staff API (``/api/v1/fleet``) and the console's dispatch board. Each step is a
report from the ``own_fleet`` courier, applied to the request like any provider's; the last
step needs the recipient's delivery PIN when the request has one.
"""

from __future__ import annotations

import hmac

from sqlalchemy import select

from .couriers.own_fleet import NEXT_STATES, fleet_event
from .errors import ApiError
from .events import Event
from .models import CourierAttempt, FleetJob, ServiceRequest, utcnow
from .tracking import store_events

MAX_PIN_FAILURES = 5
#: what each step is called, in the order staff take them
STEPS = tuple(NEXT_STATES)


def job_view(gateway, job: FleetJob) -> dict:
    """A job with its order opened: only for people allowed to dispatch."""
    return {"id": job.id, "courier": job.courier, "state": job.state, "reference": job.reference,
            "staff_name": job.staff_name, "order": gateway.vault.open(job.order_ciphertext),
            "created_at": job.created_at, "updated_at": job.updated_at}


def list_jobs(gateway, state: str | None = None, states=None, limit: int = 500) -> list[dict]:
    """Oldest first: the longest-waiting booking is the next one to take."""
    query = select(FleetJob).order_by(FleetJob.created_at)
    if state:
        query = query.where(FleetJob.state == state)
    if states:
        query = query.where(FleetJob.state.in_(states))
    with gateway.db.read() as session:
        jobs = [job_view(gateway, job) for job in session.scalars(query.limit(limit))]
        owners = dict(session.execute(
            select(CourierAttempt.reference, CourierAttempt.request_id)
            .where(CourierAttempt.reference.in_([job["reference"] for job in jobs]))).all())
    # Whose personal data each job shows: what reading the board is audited with.
    return [{**job, "request_id": owners.get(job["reference"])} for job in jobs]


def advance(gateway, job_id: str, step: str, actor: str, *, staff_name: str | None = None,
            pin: str | None = None) -> dict:
    """Accept, pick up or deliver a job; each step moves its request forward.

    :raises ApiError: 404 unknown job or step, 409 wrong state or PIN locked, 422 wrong PIN
    """
    if step not in NEXT_STATES:
        raise ApiError(404, "not_found", "Steps are accept, pickup and deliver.")
    before, after = NEXT_STATES[step]
    proof = None
    if step == "deliver":
        proof = _check_pin(gateway, job_id, pin, before, actor)
    with gateway.db.write() as session:
        job = session.get(FleetJob, job_id)
        if job is None:
            raise ApiError(404, "fleet_job_not_found", "No fleet job with this id.")
        if job.state != before:
            raise ApiError(409, "fleet_job_state", f"The job is {job.state}; {step} needs it "
                                                   f"to be {before}.")
        job.state, job.updated_at = after, utcnow()
        if step == "accept":
            job.staff_name = staff_name
        gateway.track(session, Event(f"fleet.{step}", actor=actor, target=f"fleet_job:{job.id}"))
        if proof is not None:
            proof["delivered_by"] = job.staff_name
        event = fleet_event(job, proof)
        courier, view = job.courier, job_view(gateway, job)
    store_events(gateway, courier, [event], source="fleet")
    return view


def _check_pin(gateway, job_id: str, pin: str | None, expected_state: str, actor: str) -> dict:
    """For a request that has a delivery PIN, the courier must give it to complete.

    Wrong PINs are counted (in their own transaction, so a refusal still counts); after
    five the job is locked for the office to sort out. :return: the proof to record
    """
    with gateway.db.write() as session:
        job = session.get(FleetJob, job_id)
        if job is None:
            raise ApiError(404, "fleet_job_not_found", "No fleet job with this id.")
        if job.state != expected_state:
            return {}  # the step itself is refused (409) before any PIN matters
        attempt = session.scalars(select(CourierAttempt).where(
            CourierAttempt.reference == job.reference)).first()
        record = session.get(ServiceRequest, attempt.request_id) if attempt else None
        if record is None or record.delivery_pin_ciphertext is None:
            return {"pin_verified": False}
        if record.pin_failures >= MAX_PIN_FAILURES:
            outcome = "locked"
        elif pin and hmac.compare_digest(pin, gateway.vault.open(
                record.delivery_pin_ciphertext)):
            outcome = "ok"
        else:
            record.pin_failures += 1
            outcome = "wrong"
        gateway.track(session, Event("fleet.pin", actor=actor, target=f"request:{record.id}",
                                     outcome=outcome, correlation_id=record.correlation_id))
    if outcome == "locked":
        raise ApiError(409, "pin_locked", "Too many wrong PINs; the dispatch office must "
                                          "confirm this delivery.")
    if outcome == "wrong":
        raise ApiError(422, "wrong_pin", "The delivery PIN is missing or wrong.",
                       fields={"pin": ["Ask the recipient for the delivery PIN."]})
    return {"pin_verified": True}
