"""The own-fleet dispatch list: Gancang Aron staff take, pick up and deliver bookings.

Only callers whose agency has the ``fleet_dispatch`` role may use it. Each step is a report
from the ``own_fleet`` courier, applied to the request like any provider's.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, g, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy import select

from ..couriers.own_fleet import NEXT_STATES, STATUS_MAP, fleet_event
from ..errors import ApiError
from ..events import Event, actor_label
from ..models import CourierAttempt, FleetJob, ServiceRequest, utcnow
from ..tracking import store_events
from .v1 import validation_error

bp = Blueprint("fleet", __name__, url_prefix="/api/v1/fleet")


MAX_PIN_FAILURES = 5


class FleetStepSchema(Schema):
    class Meta:
        unknown = RAISE

    staff_name = fields.String(validate=validate.Length(min=1, max=120))
    pin = fields.String(validate=validate.Regexp(r"^\d{4,8}$"), metadata={
        "description": "deliver: the PIN the recipient tells the courier."})


class FleetJobSchema(Schema):
    id = fields.String(required=True)
    courier = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(list(STATUS_MAP)))
    staff_name = fields.String(allow_none=True)
    order = fields.Dict(required=True, metadata={"description": "What to carry, and where."})
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class FleetJobListSchema(Schema):
    jobs = fields.List(fields.Nested(FleetJobSchema), required=True)


class FleetListArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(validate=validate.OneOf(list(STATUS_MAP)))


def _gateway():
    gateway = current_app.extensions["gateway"]
    if not gateway.allowed(g.actor, "fleet:dispatch"):
        raise ApiError(403, "forbidden", "Only the own-fleet dispatch office may do this.")
    return gateway


def _dump(gateway, job: FleetJob) -> dict:
    return FleetJobSchema().dump({
        "id": job.id, "courier": job.courier, "state": job.state, "staff_name": job.staff_name,
        "order": gateway.vault.open(job.order_ciphertext),
        "created_at": job.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": job.updated_at.isoformat().replace("+00:00", "Z")})


@bp.get("/jobs")
def list_jobs():
    """The dispatch list, oldest first, optionally one state only."""
    gateway = _gateway()
    try:
        args = FleetListArgsSchema().load(request.args.to_dict())
    except ValidationError as exc:
        raise validation_error(exc.messages, "The query is not valid.") from None
    query = select(FleetJob).order_by(FleetJob.created_at)
    if "state" in args:
        query = query.where(FleetJob.state == args["state"])
    with gateway.db.read() as session:
        return FleetJobListSchema().dump(
            {"jobs": [_dump(gateway, job) for job in session.scalars(query.limit(500))]})


@bp.post("/jobs/<job_id>/<step>")
def advance(job_id: str, step: str):
    """Accept, pick up or deliver a job; each step moves its request forward."""
    gateway = _gateway()
    if step not in NEXT_STATES:
        raise ApiError(404, "not_found", "Steps are accept, pickup and deliver.")
    body = request.get_json(silent=True) if request.data else {}
    try:
        args = FleetStepSchema().load(body or {})
    except ValidationError as exc:
        raise validation_error(exc.messages) from None
    before, after = NEXT_STATES[step]
    proof = None
    if step == "deliver":
        proof = _check_pin(gateway, job_id, args.get("pin"), before)
    with gateway.db.write() as session:
        job = session.get(FleetJob, job_id)
        if job is None:
            raise ApiError(404, "fleet_job_not_found", "No fleet job with this id.")
        if job.state != before:
            raise ApiError(409, "fleet_job_state", f"The job is {job.state}; {step} needs it "
                                                   f"to be {before}.")
        job.state, job.updated_at = after, utcnow()
        if step == "accept":
            job.staff_name = args.get("staff_name") or g.actor.get("name")
        gateway.track(session, Event(f"fleet.{step}", actor=actor_label(g.actor),
                                     target=f"fleet_job:{job.id}"))
        if proof is not None:
            proof["delivered_by"] = job.staff_name
        event = fleet_event(job, proof)
        courier, dumped = job.courier, _dump(gateway, job)
    store_events(gateway, courier, [event], source="fleet")
    return dumped


def _check_pin(gateway, job_id: str, pin: str | None, expected_state: str) -> dict:
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
        gateway.track(session, Event("fleet.pin", actor=actor_label(g.actor),
                                     target=f"request:{record.id}", outcome=outcome,
                                     correlation_id=record.correlation_id))
    if outcome == "locked":
        raise ApiError(409, "pin_locked", "Too many wrong PINs; the dispatch office must "
                                          "confirm this delivery.")
    if outcome == "wrong":
        raise ApiError(422, "wrong_pin", "The delivery PIN is missing or wrong.",
                       fields={"pin": ["Ask the recipient for the delivery PIN."]})
    return {"pin_verified": True}
