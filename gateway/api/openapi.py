"""The OpenAPI 3 document, generated from the marshmallow schemas, and a page for people.

Every installed service gets its own concrete path (``/api/v1/services/<name>/requests``)
with its request schema and example, so installing a plugin is enough for it to appear here.
The document is built once per app and cached.
"""

from __future__ import annotations

import copy
import re
import secrets

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify, make_response, render_template

from ..statuses import Status
from . import public
from .errors import ErrorSchema
from .fleet import FleetJobListSchema, FleetJobSchema, FleetListArgsSchema, FleetStepSchema
from .schemas import (
    HealthSchema,
    RequestDetailSchema,
    RequestListArgsSchema,
    RequestListSchema,
    ServiceListSchema,
    WebhookReceiptSchema,
)

bp = Blueprint("openapi", __name__, template_folder="../templates")

ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON (`invalid_json`).",
    401: "No valid API key (`unauthenticated`).",
    403: "The key may not do this (`forbidden`, `service_not_allowed`).",
    404: "No such resource (`not_found`, `request_not_found`, `service_not_found`).",
    409: "Conflicts with what is stored (`request_not_cancellable`, `idempotency_key_reused`, "
         "`duplicate_reference`, `capacity_full` with `details.alternatives`).",
    413: "The body is too large (`payload_too_large`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    422: "Validation failed (`validation_failed`, or a service rule such as "
         "`restricted_medicine`); see `fields`.",
    429: "Too many calls for this agency and key type (`rate_limited`), or too many wrong "
         "API keys from this address (`too_many_failed_keys`); see Retry-After.",
    503: "A dependency is unavailable; nothing was stored (`service_unavailable`).",
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _errors(*codes: int) -> dict:
    return {str(code): {"description": ERROR_DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": "Error"}}}
            for code in codes}


def _webhook_errors(descriptions: dict[int, str]) -> dict:
    return {str(code): {"description": text,
                        "content": {"application/json": {"schema": "Error"}}}
            for code, text in descriptions.items()}


def _ok(code: int, schema: str, description: str) -> dict:
    return {str(code): {"description": description,
                        "content": {"application/json": {"schema": schema}}}}


def _request_id_param() -> dict:
    return {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}


def build_spec(gateway) -> dict:
    spec = APISpec(
        title="Public-service integration gateway", version="1.0.0", openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Agencies submit public-service requests (medicine delivery, "
                             "UMKM pickup, tourist transport); the gateway books couriers and "
                             "reports every status. Authenticate with "
                             "`Authorization: Bearer <API key>`."},
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.schema("RequestDetail", schema=RequestDetailSchema)
    spec.components.schema("RequestList", schema=RequestListSchema)
    spec.components.schema("ServiceList", schema=ServiceListSchema)
    spec.components.schema("Health", schema=HealthSchema)
    common = (401, 429, 503)
    spec.path(path="/healthz", operations={"get": {
        "summary": "Liveness", "security": [], "responses": _ok(200, "Health", "Up.")}})
    spec.path(path="/readyz", operations={"get": {
        "summary": "Readiness: database and Redis reachable", "security": [],
        "responses": {**_ok(200, "Health", "Ready."),
                      "503": {"description": "Not ready.",
                              "content": {"application/json": {"schema": "Error"}}}}}})
    spec.path(path="/api/v1/services", operations={"get": {
        "summary": "Services this agency may use", "tags": ["services"],
        "responses": {**_ok(200, "ServiceList", "The services."), **_errors(403, *common)}}})
    for name, service in sorted(gateway.enabled_services().items()):
        component = f"{_camel(name)}Request"
        spec.components.schema(component, schema=service.request_schema)
        content = {"schema": component}
        if service.example_request is not None:
            content["example"] = service.example_request
        spec.path(path=f"/api/v1/services/{name}/requests", operations={"post": {
            "summary": f"Submit a request: {service.title}",
            "description": service.description, "tags": [name],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                       "pattern": r"^[\x21-\x7e]+$"},
                            "description": "Retrying with the same key returns the same "
                                           "request instead of making a second one."}],
            "requestBody": {"required": True, "content": {"application/json": content}},
            "responses": {**_ok(202, "RequestDetail", "Accepted: stored and queued."),
                          **_errors(400, 403, 404, 409, 413, 415, 422, *common)}}})
    spec.path(path="/api/v1/requests", operations={"get": {
        "summary": "This agency's requests, newest first", "tags": ["requests"],
        "parameters": [{"in": "query", "schema": RequestListArgsSchema}],
        "responses": {**_ok(200, "RequestList", "A page of requests."),
                      **_errors(403, 422, *common)}}})
    spec.path(path="/api/v1/requests/{request_id}", operations={"get": {
        "summary": "One request with its timeline", "tags": ["requests"],
        "parameters": [_request_id_param()],
        "responses": {**_ok(200, "RequestDetail", "The request."),
                      **_errors(403, 404, *common)}}})
    views = sorted({name for service in gateway.enabled_services().values()
                    for name in service.views()})
    if views:
        spec.path(path="/api/v1/requests/{request_id}/{view}", operations={"get": {
            "summary": "Another representation of a request, offered by its service",
            "description": "; ".join(
                f"`{name}` ({service.name}): {view.summary}"
                for service in gateway.enabled_services().values()
                for name, view in service.views().items()),
            "tags": ["requests"],
            "parameters": [_request_id_param(),
                           {"name": "view", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": views}}],
            "responses": {"200": {"description": "The view.", "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/fhir+json": {"schema": {"type": "object"}}}},
                **_errors(403, 404, *common),
                "410": {"description": "The personal data it needs was purged "
                                       "(`personal_data_purged`).",
                        "content": {"application/json": {"schema": "Error"}}}}}})
    spec.path(path="/api/v1/requests/{request_id}/cancel", operations={"post": {
        "summary": "Cancel a request", "tags": ["requests"],
        "parameters": [_request_id_param()],
        "responses": {**_ok(200, "RequestDetail", "Cancelled."),
                      **_ok(202, "RequestDetail", "Cancellation asked of the courier."),
                      **_errors(403, 404, 409, *common)}}})
    spec.components.schema("FleetJob", schema=FleetJobSchema)
    spec.components.schema("FleetJobList", schema=FleetJobListSchema)
    spec.components.schema("WebhookReceipt", schema=WebhookReceiptSchema)
    spec.path(path="/api/v1/fleet/jobs", operations={"get": {
        "summary": "The own-fleet dispatch list (fleet_dispatch role)", "tags": ["fleet"],
        "parameters": [{"in": "query", "schema": FleetListArgsSchema}],
        "responses": {**_ok(200, "FleetJobList", "The jobs, oldest first."),
                      **_errors(403, 422, *common)}}})
    spec.path(path="/api/v1/fleet/jobs/{job_id}/{step}", operations={"post": {
        "summary": "Accept, pick up or deliver a fleet job", "tags": ["fleet"],
        "parameters": [{"name": "job_id", "in": "path", "required": True,
                        "schema": {"type": "string"}},
                       {"name": "step", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": ["accept", "pickup", "deliver"]}}],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": FleetStepSchema}}},
        "responses": {**_ok(200, "FleetJob", "The job after the step."),
                      **_errors(400, 403, 404, 409, 422, *common)}}})
    spec.path(path="/webhooks/{courier}", operations={"post": {
        "summary": "A courier provider's status report (verified by the courier's adapter)",
        "tags": ["webhooks"], "security": [],
        "parameters": [{"name": "courier", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object"}}}},
        "responses": {**_ok(200, "WebhookReceipt", "Stored (or a duplicate)."),
                      **_webhook_errors({
                          400: "Not UTF-8 (`invalid_body_encoding`) or nested deeper than "
                               "`webhooks.max_depth` (`body_too_deep`); not parsed.",
                          401: "Not verifiable (`webhook_rejected`).",
                          404: "No courier of that name (`courier_not_found`).",
                          413: "Over `webhooks.max_body_bytes` (`payload_too_large`).",
                          415: "Sent with a Content-Encoding (`unsupported_media_type`).",
                          429: "Too many refused webhooks from this address lately "
                               "(`rate_limited`); see Retry-After.",
                          503: "The database is away; nothing was stored "
                               "(`service_unavailable`): send it again."})}}})
    spec.path(path="/api/openapi.json", operations={"get": {
        "summary": "This document", "security": [],
        "responses": {"200": {"description": "OpenAPI 3 document.",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}})
    document = spec.to_dict()
    document["security"] = [{"bearerAuth": []}]
    document["x-statuses"] = [s.value for s in Status]
    return document


def get_spec(app=None) -> dict:
    app = app or current_app
    cache = app.extensions.setdefault("gateway.openapi", {})
    if "spec" not in cache:
        cache["spec"] = build_spec(app.extensions["gateway"])
    return cache["spec"]


def _inline(node, schemas: dict, seen: tuple = ()):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in seen:
                return {"type": "object"}
            return _inline(copy.deepcopy(schemas[name]), schemas, (*seen, name))
        return {k: _inline(v, schemas, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, schemas, seen) for v in node]
    return node


def service_request_json_schema(service) -> dict:
    """The self-contained JSON schema of a service's request body (references inlined)."""
    spec = get_spec()
    schemas = spec["components"]["schemas"]
    return _inline(schemas[f"{_camel(service.name)}Request"], schemas)


@bp.get("/api/openapi.json")
@public
def openapi_json():
    """The OpenAPI 3 document."""
    return jsonify(get_spec())


@bp.get("/api/docs")
@public
def api_docs():
    """A page for people, drawn from the same document (no external scripts)."""
    spec = get_spec()
    operations = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            operations.append({"method": method.upper(), "path": path, "op": op,
                               "anchor": re.sub(r"[^a-z0-9]+", "-", f"{method}{path}".lower()),
                               "example": body.get("example"),
                               "schema": _inline(body.get("schema"),
                                                 spec["components"]["schemas"])})
    nonce = secrets.token_urlsafe(16)
    response = make_response(render_template("api_docs.html", spec=spec,
                                             operations=operations, style_nonce=nonce))
    response.headers.update(docs_page_headers(nonce))
    return response


def docs_page_headers(style_nonce: str) -> dict[str, str]:
    """A page of text and one inline stylesheet: the browser may run no script, load nothing
    from anywhere, be framed by no one and send no form; the stylesheet is allowed by a nonce
    fresh on every answer, so text that found its way into the document cannot add its own."""
    return {
        "Content-Security-Policy": (f"default-src 'none'; style-src 'nonce-{style_nonce}'; "
                                    "base-uri 'none'; form-action 'none'; "
                                    "frame-ancestors 'none'"),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
