"""The agency API, version 1: services, requests, cancellation.

Views are thin: they read HTTP (headers, the JSON body, the query) and hand the rest to the
domain: :mod:`gateway.intake` makes requests, :mod:`gateway.records` finds and lists them,
:mod:`gateway.operations` cancels them. Every answer is dumped through a schema from
``gateway.api.schemas``; every failure is a :mod:`gateway.errors` error or, for what only
HTTP knows, an :class:`ApiError` (both answered in the one shape by ``gateway.api.errors``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import ValidationError

from .. import intake, proofs
from ..errors import Invalid
from ..events import actor_label
from ..fields import shared_schema
from ..operations import cancel_request as cancel
from ..records import (
    delivery_time,
    detail,
    get_for_actor,
    list_for_actor,
    pin_to_agency,
    summary,
    view_request,
)
from ..services import ViewGone
from ..statuses import Status
from .errors import ApiError
from .openapi import service_request_json_schema
from .schemas import (
    ProofListSchema,
    RequestDetailSchema,
    RequestListArgsSchema,
    RequestListSchema,
    ServiceListSchema,
)

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")

IDEMPOTENCY_HEADER = intake.IDEMPOTENCY_FIELD


def _gateway():
    return current_app.extensions["gateway"]


def _require(action: str, resource=None) -> None:
    if not _gateway().allowed(g.actor, action, resource):
        raise ApiError(403, "forbidden", "These credentials may not do this.")


@bp.get("/services")
def list_services():
    """The services this agency may use, each with the JSON schema of its request.
    ---
    get:
      operationId: listServices
      summary: Services this agency may use
      tags: [services]
      responses:
        200:
          description: The services.
          content: {application/json: {schema: ServiceListSchema}}
      errors: [401, 403, 429, 503]
    """
    _require("services:list")
    gateway = _gateway()
    services = [
        {"name": s.name, "title": s.title, "description": s.description, "version": s.version,
         "order_kind": s.order_kind, "request_schema": service_request_json_schema(s)}
        for name, s in sorted(gateway.enabled_services().items())
        if gateway.allowed(g.actor, "requests:create", name)
    ]
    return shared_schema(ServiceListSchema).dump({"services": services})


def _json_body():
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.")
    return body


@bp.post("/services/<service_name>/requests")
def create_service_request(service_name: str):
    r"""Submit a request to a service: validated, stored, audited, queued; answers 202.

    Documented once per service (``gateway.api.openapi``), with its schema and example.
    ---
    post:
      parameters:
      - name: Idempotency-Key
        in: header
        required: false
        description: Retrying with the same key returns the same request instead of
          making a second one.
        schema: {type: string, minLength: 1, maxLength: 255, pattern: '^[\x21-\x7e]+$'}
      responses:
        202:
          description: "Accepted: stored and queued."
          content: {application/json: {schema: RequestDetailSchema}}
      errors: [400, 401, 403, 404, 409, 413, 415, 422, 429, 503]
    """
    gateway = _gateway()
    # Refusals in the order callers have always met them: service, key, then the body.
    intake.service_for(gateway, g.actor, service_name)
    idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
    intake.check_idempotency_key(idempotency_key)
    accepted = intake.submit(gateway, intake.NewRequest(
        actor=g.actor, service=service_name, body=_json_body(),
        idempotency_key=idempotency_key, correlation_id=g.correlation_id))
    return _answer(gateway, accepted)


def _answer(gateway, accepted: intake.Accepted):
    """202 with the stored request (its Location; ``Idempotent-Replayed`` for a retry)."""
    record = accepted.record
    response = jsonify(shared_schema(RequestDetailSchema).dump(_detail(gateway, record)))
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/requests/{record.id}"
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/requests")
def list_requests():
    """This agency's requests made with this type of key, newest first, filtered and
    paginated.
    ---
    get:
      operationId: listRequests
      summary: This agency's requests, newest first
      tags: [requests]
      parameters:
      - {in: query, schema: RequestListArgsSchema}
      responses:
        200:
          description: A page of requests.
          content: {application/json: {schema: RequestListSchema}}
      errors: [401, 403, 422, 429, 503]
    """
    _require("requests:list")
    try:
        args = shared_schema(RequestListArgsSchema).load(request.args.to_dict())
    except ValidationError as exc:
        raise Invalid.from_messages(exc.messages, "The query is not valid.") from None
    settings = _gateway().settings["api"]
    limit = min(args.pop("limit", settings["default_page_size"]), settings["max_page_size"])
    with _gateway().db.read() as session:
        rows, next_cursor = list_for_actor(session, g.actor, limit=limit, **args)
        return shared_schema(RequestListSchema).dump({"requests": [summary(r) for r in rows],
                                         "next_cursor": next_cursor})


@bp.get("/requests/<request_id>")
def get_request(request_id: str):
    """One request with its timeline of status events.
    ---
    get:
      operationId: getRequest
      summary: One request with its timeline
      tags: [requests]
      parameters:
      - {name: request_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The request.
          content: {application/json: {schema: RequestDetailSchema}}
      errors: [401, 403, 404, 429, 503]
    """
    with _gateway().db.read() as session:
        record = get_for_actor(session, g.actor, request_id)
        _require("requests:read", record)
        gateway = _gateway()
        return shared_schema(RequestDetailSchema).dump(_detail(gateway, record))


@bp.get("/requests/<request_id>/proof")
def list_proof(request_id: str):
    """The proof of delivery of a request: the courier's delivery time and its images.
    ---
    get:
      operationId: listProofOfDelivery
      summary: Proof of delivery images of a request
      tags: [requests]
      parameters:
      - {name: request_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The images the courier reported, fetched or not.
          content: {application/json: {schema: ProofListSchema}}
      errors: [401, 403, 404, 429, 503]
    """
    with _gateway().db.read() as session:
        record = get_for_actor(session, g.actor, request_id)
        _require("requests:read", record)
        response = jsonify(shared_schema(ProofListSchema).dump(
            {"delivered_at": delivery_time(session, record),
             "images": proofs.listing(session, record.id)}))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/requests/<request_id>/proof/images/<index>")
def get_proof_image(request_id: str, index: str):
    """One proof-of-delivery image, as the courier's photo was fetched (never cached).
    ---
    get:
      operationId: getProofOfDeliveryImage
      summary: One proof of delivery image
      tags: [requests]
      parameters:
      - {name: request_id, in: path, required: true, schema: {type: string}}
      - {name: index, in: path, required: true, schema: {type: integer, minimum: 0}}
      responses:
        200:
          description: The image.
          content:
            image/jpeg: {schema: {type: string, format: binary}}
            image/png: {schema: {type: string, format: binary}}
            image/webp: {schema: {type: string, format: binary}}
      errors: [401, 403, 404, 429, 503]
    """
    gateway = _gateway()
    with gateway.db.read() as session:
        record = get_for_actor(session, g.actor, request_id)
        _require("requests:read", record)
        found = proofs.image(session, gateway.vault, record.id, int(index)) \
            if index.isascii() and index.isdigit() and len(index) < 6 else None
    if found is None:
        raise ApiError(404, "proof_image_not_found", "This request has no such stored image.")
    content_type, body = found
    response = current_app.response_class(body, mimetype=content_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _detail(gateway, record) -> dict:
    """The request's detail as its agency sees it: the tracking link, the cost in the region's
    currency, and the PIN unless the service sends it to the citizen only."""
    return detail(record, gateway.vault, gateway.links, gateway.region.currency,
                  pin_to_agency=pin_to_agency(gateway, record))


def register_views(app, gateway) -> None:
    """Route ``/api/v1/requests/<id>/<view>`` for exactly the views the services offer, so
    no other path answers there (``.../cancel`` stays POST-only)."""
    names = sorted({name for service in gateway.services.values() for name in service.views()})
    if names:
        app.add_url_rule(f"{bp.url_prefix}/requests/<request_id>/<any({', '.join(names)}):"
                         "view_name>", "api_v1.request_view", request_view, methods=["GET"])


def request_view(request_id: str, view_name: str):
    """Another representation of a request, offered by its service (e.g. ``fhir``).

    Documented once per view (``gateway.api.openapi``), with its media type.
    ---
    get:
      tags: [requests]
      parameters:
      - {name: request_id, in: path, required: true, schema: {type: string}}
      responses:
        410:
          description: The personal data it needs was purged (`personal_data_purged`).
          content: {application/json: {schema: ErrorSchema}}
      errors: [401, 403, 404, 429, 503]
    """
    gateway = _gateway()
    with gateway.db.read() as session:
        record = get_for_actor(session, g.actor, request_id)
        _require("requests:read", record)
        service = gateway.services.get(record.service)
        view = service.views().get(view_name) if service else None
        if view is None:
            raise ApiError(404, "view_not_found", f"Requests of {record.service!r} have no "
                                                  f"{view_name!r} view.")
        data = gateway.vault.open(record.payload_ciphertext) if record.payload_ciphertext \
            else None
        proof = gateway.vault.open(record.proof_ciphertext) if record.proof_ciphertext \
            else None
        try:
            rendered = view.render(view_request(session, record), data, proof)
        except ViewGone as exc:
            raise ApiError(410, "personal_data_purged", str(exc) or "The personal data this "
                           "view needs was removed after the retention period.") from None
    response = jsonify(rendered)
    response.mimetype = view.media_type
    return response


@bp.post("/requests/<request_id>/cancel")
def cancel_request(request_id: str):
    """Cancel a request: at once if no courier holds it yet, otherwise at the courier.
    ---
    post:
      operationId: cancelRequest
      summary: Cancel a request
      tags: [requests]
      parameters:
      - {name: request_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: Cancelled.
          content: {application/json: {schema: RequestDetailSchema}}
        202:
          description: Cancellation asked of the courier.
          content: {application/json: {schema: RequestDetailSchema}}
      errors: [401, 403, 404, 409, 429, 503]
    """
    gateway = _gateway()
    cancel(gateway, request_id, actor_label(g.actor), g.correlation_id,
           find=lambda session: get_for_actor(session, g.actor, request_id),
           authorize=lambda record: _require("requests:cancel", record))
    with gateway.db.read() as session:
        record = get_for_actor(session, g.actor, request_id)
        response = jsonify(shared_schema(RequestDetailSchema).dump(
            _detail(gateway, record)))
        response.status_code = 200 if record.status == Status.CANCELLED else 202
        return response
