"""The own-fleet dispatch list: Gancang Aron staff take, pick up and deliver bookings.

Shared by the staff API (``/api/v1/fleet``) and the console's dispatch board. Each step is a
report from the ``own_fleet`` courier, applied to the request like any provider's; the last
step needs the recipient's delivery PIN when the request has one.

A job belongs to the world of the request it carries: one made with a test key is on a
sandbox dispatch list that only the fleet office's test keys see and move, never offered to
the real staff (live keys) nor, in ``mode: live``, to the console's board; and back. Callers
say which key types they may see (``key_types``); a job of another is a missing id (404).
"""

from __future__ import annotations

import hmac

from sqlalchemy import select, update

from .couriers.own_fleet.mapping import NEXT_STATES, fleet_event
from .errors import Conflict, Invalid, NotFound
from .events import Event
from .models import CourierAttempt, FleetJob, ServiceRequest, utcnow
from .tracking import store_events

MAX_PIN_FAILURES = 5
#: what each step is called, in the order staff take them
STEPS = tuple(NEXT_STATES)


def job_view(gateway, job: FleetJob, key_type: str) -> dict:
    """A job with its order opened: only for people allowed to dispatch."""
    return {"id": job.id, "courier": job.courier, "state": job.state, "reference": job.reference,
            "staff_name": job.staff_name, "order": gateway.vault.open(job.order_ciphertext),
            "key_type": key_type, "created_at": job.created_at, "updated_at": job.updated_at}


def _jobs_with_key_type(key_types=None):
    """Jobs with the key type of the request each carries (found through the attempt that
    booked it, by our reference), only those of ``key_types`` unless it is None. A job
    whose request cannot be found belongs to no world and is shown to nobody. Each row also
    names the request whose personal data the job shows (what reading the board is audited
    with)."""
    query = (select(FleetJob, ServiceRequest.key_type, ServiceRequest.id)
             .join(CourierAttempt, CourierAttempt.reference == FleetJob.reference)
             .join(ServiceRequest, ServiceRequest.id == CourierAttempt.request_id))
    if key_types is not None:
        query = query.where(ServiceRequest.key_type.in_(list(key_types)))
    return query


def _find_job(session, job_id: str, key_types) -> tuple[FleetJob, str]:
    """:raises NotFound: ``fleet_job_not_found``, alike for a missing job and one of another
        world"""
    found = session.execute(_jobs_with_key_type(key_types).where(FleetJob.id == job_id)
                            ).first()
    if found is None:
        raise NotFound("fleet_job_not_found", "No fleet job with this id.")
    return found[0], found[1]


def list_jobs(gateway, state: str | None = None, states=None, limit: int = 500, *,
              key_types=None) -> list[dict]:
    """Oldest first: the longest-waiting booking is the next one to take.

    :param key_types: show only jobs for requests made with these types of key (the staff
        API passes the caller's own); None shows every job
    """
    query = _jobs_with_key_type(key_types).order_by(FleetJob.created_at)
    if state:
        query = query.where(FleetJob.state == state)
    if states:
        query = query.where(FleetJob.state.in_(states))
    with gateway.db.read() as session:
        return [{**job_view(gateway, job, key_type), "request_id": request_id}
                for job, key_type, request_id in session.execute(query.limit(limit))]


def advance(gateway, job_id: str, step: str, actor: str, *, staff_name: str | None = None,
            pin: str | None = None, key_types=None) -> dict:
    """Accept, pick up or deliver a job; each step moves its request forward.

    :param key_types: the caller may move only jobs for requests made with these types of
        key (see :func:`list_jobs`)
    :raises NotFound: an unknown job (or one of another world) or step
    :raises Conflict: ``fleet_job_state`` (the job is not ready for this step),
        ``pin_locked`` (too many wrong PINs)
    :raises Invalid: ``wrong_pin``
    """
    if step not in NEXT_STATES:
        raise NotFound("not_found", "Steps are accept, pickup and deliver.")
    before, after = NEXT_STATES[step]
    proof = None
    if step == "deliver":
        proof = _check_pin(gateway, job_id, pin, before, actor, key_types)
    with gateway.db.write() as session:
        job, key_type = _find_job(session, job_id, key_types)
        if job.state != before:
            raise Conflict("fleet_job_state", f"The job is {job.state}; {step} needs it "
                                              f"to be {before}.")
        job.state, job.updated_at = after, utcnow()
        if step == "accept":
            job.staff_name = staff_name
        gateway.track(session, Event(f"fleet.{step}", actor=actor, target=f"fleet_job:{job.id}"))
        if proof is not None:
            proof["delivered_by"] = job.staff_name
        event = fleet_event(job, proof)
        courier, view = job.courier, job_view(gateway, job, key_type)
    store_events(gateway, courier, [event], source="fleet")
    return view


def _check_pin(gateway, job_id: str, pin: str | None, expected_state: str, actor: str,
               key_types) -> dict:
    """For a request that has a delivery PIN, the courier must give it to complete.

    Each attempt is counted *before* the PIN is compared, by one conditional UPDATE committed
    on its own (``pin_failures + 1`` only while under the limit): parallel guesses cannot all
    read a count that none of them has raised yet, and a refusal still counts. After five
    wrong PINs the job is locked for the office to sort out; a right PIN gives its count back.
    :return: the proof to record
    """
    with gateway.db.read() as session:
        job, _key_type = _find_job(session, job_id, key_types)
        if job.state != expected_state:
            return {}  # the step itself is refused (a Conflict) before any PIN matters
        attempt = session.scalars(select(CourierAttempt).where(
            CourierAttempt.reference == job.reference)).first()
        record = session.get(ServiceRequest, attempt.request_id) if attempt else None
        if record is None or record.delivery_pin_ciphertext is None:
            return {"pin_verified": False}
        request_id, sealed_pin = record.id, record.delivery_pin_ciphertext
        correlation = record.correlation_id
    with gateway.db.write() as session:
        counted = session.execute(
            update(ServiceRequest)
            .where(ServiceRequest.id == request_id,
                   ServiceRequest.pin_failures < MAX_PIN_FAILURES)
            .values(pin_failures=ServiceRequest.pin_failures + 1)
            .execution_options(synchronize_session=False)).rowcount
    if not counted:
        outcome = "locked"
    elif pin and hmac.compare_digest(pin, gateway.vault.open(sealed_pin)):
        outcome = "ok"
    else:
        outcome = "wrong"
    with gateway.db.write() as session:
        if outcome == "ok":
            session.execute(update(ServiceRequest).where(ServiceRequest.id == request_id)
                            .values(pin_failures=ServiceRequest.pin_failures - 1)
                            .execution_options(synchronize_session=False))
        gateway.track(session, Event("fleet.pin", actor=actor, target=f"request:{request_id}",
                                     outcome=outcome, correlation_id=correlation))
    if outcome == "locked":
        raise Conflict("pin_locked", "Too many wrong PINs; the dispatch office must "
                                     "confirm this delivery.")
    if outcome == "wrong":
        raise Invalid("wrong_pin", "The delivery PIN is missing or wrong.",
                      fields={"pin": ["Ask the recipient for the delivery PIN."]})
    return {"pin_verified": True}
