"""The own-fleet dispatch API for staff apps; the rules live in ``gateway.fleet``.

Only callers whose agency has the ``fleet_dispatch`` role may use it, and each key sees and
moves only the jobs of requests made with its own type of key: the real staff (live keys)
are never offered a test request, and a test key (a staff app in development) works a
sandbox list of test requests only.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from marshmallow import ValidationError

from .. import fleet
from ..errors import Invalid
from ..events import actor_label
from ..fields import shared_schema
from .errors import ApiError
from .schemas import FleetJobListSchema, FleetJobSchema, FleetListArgsSchema, FleetStepSchema

bp = Blueprint("fleet", __name__, url_prefix="/api/v1/fleet")


def _gateway():
    gateway = current_app.extensions["gateway"]
    if not gateway.allowed(g.actor, "fleet:dispatch"):
        raise ApiError(403, "forbidden", "Only the own-fleet dispatch office may do this.")
    return gateway


def _dump(job: dict) -> dict:
    return shared_schema(FleetJobSchema).dump({
        **job, "created_at": job["created_at"].isoformat().replace("+00:00", "Z"),
        "updated_at": job["updated_at"].isoformat().replace("+00:00", "Z")})


@bp.get("/jobs")
def list_jobs():
    """The dispatch list, oldest first, optionally one state only.
    ---
    get:
      operationId: listFleetJobs
      summary: The own-fleet dispatch list (fleet_dispatch role)
      tags: [fleet]
      parameters:
      - {in: query, schema: FleetListArgsSchema}
      responses:
        200:
          description: The jobs, oldest first.
          content: {application/json: {schema: FleetJobListSchema}}
      errors: [401, 403, 422, 429, 503]
    """
    gateway = _gateway()
    try:
        args = shared_schema(FleetListArgsSchema).load(request.args.to_dict())
    except ValidationError as exc:
        raise Invalid.from_messages(exc.messages, "The query is not valid.") from None
    jobs = fleet.list_jobs(gateway, args.get("state"), key_types=(g.actor["key_type"],))
    return shared_schema(FleetJobListSchema).dump({"jobs": [_dump(job) for job in jobs]})


@bp.post("/jobs/<job_id>/<step>")
def advance(job_id: str, step: str):
    """Accept, pick up or deliver a job; each step moves its request forward.

    Documented once per step (``gateway.api.openapi``).
    ---
    post:
      tags: [fleet]
      parameters:
      - {name: job_id, in: path, required: true, schema: {type: string}}
      requestBody:
        required: false
        content: {application/json: {schema: FleetStepSchema}}
      responses:
        200:
          description: The job after the step.
          content: {application/json: {schema: FleetJobSchema}}
      errors: [400, 401, 403, 404, 409, 422, 429, 503]
    """
    gateway = _gateway()
    if step not in fleet.STEPS:
        raise ApiError(404, "not_found", "Steps are accept, pickup and deliver.")
    body = request.get_json(silent=True) if request.data else {}
    try:
        args = shared_schema(FleetStepSchema).load(body or {})
    except ValidationError as exc:
        raise Invalid.from_messages(exc.messages) from None
    return _dump(fleet.advance(gateway, job_id, step, actor_label(g.actor),
                               staff_name=args.get("staff_name") or g.actor.get("name"),
                               pin=args.get("pin"), key_types=(g.actor["key_type"],)))
