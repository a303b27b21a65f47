"""The own-fleet dispatch API for staff apps; the rules live in ``gateway.fleet``.

Only callers whose agency has the ``fleet_dispatch`` role may use it, and each key sees and
moves only the jobs of requests made with its own type of key: the real staff (live keys)
are never offered a test request, and a test key (a staff app in development) works a
sandbox list of test requests only.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .. import fleet
from ..couriers.own_fleet.mapping import STATUS_MAP
from ..events import actor_label
from .errors import ApiError
from .v1 import validation_error

bp = Blueprint("fleet", __name__, url_prefix="/api/v1/fleet")



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
    key_type = fields.String(required=True, validate=validate.OneOf(["live", "test"]),
                             metadata={"description": "The type of key the request was made "
                                                      "with (always the caller's own)."})
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


def _dump(job: dict) -> dict:
    return FleetJobSchema().dump({
        **job, "created_at": job["created_at"].isoformat().replace("+00:00", "Z"),
        "updated_at": job["updated_at"].isoformat().replace("+00:00", "Z")})


@bp.get("/jobs")
def list_jobs():
    """The dispatch list, oldest first, optionally one state only."""
    gateway = _gateway()
    try:
        args = FleetListArgsSchema().load(request.args.to_dict())
    except ValidationError as exc:
        raise validation_error(exc.messages, "The query is not valid.") from None
    jobs = fleet.list_jobs(gateway, args.get("state"), key_types=(g.actor["key_type"],))
    return FleetJobListSchema().dump({"jobs": [_dump(job) for job in jobs]})


@bp.post("/jobs/<job_id>/<step>")
def advance(job_id: str, step: str):
    """Accept, pick up or deliver a job; each step moves its request forward."""
    gateway = _gateway()
    if step not in fleet.STEPS:
        raise ApiError(404, "not_found", "Steps are accept, pickup and deliver.")
    body = request.get_json(silent=True) if request.data else {}
    try:
        args = FleetStepSchema().load(body or {})
    except ValidationError as exc:
        raise validation_error(exc.messages) from None
    return _dump(fleet.advance(gateway, job_id, step, actor_label(g.actor),
                               staff_name=args.get("staff_name") or g.actor.get("name"),
                               pin=args.get("pin"), key_types=(g.actor["key_type"],)))
