"""The one error shape of the API, and the handlers that make every failure use it.

Every error a caller sees is JSON::

    {"code": "validation_failed", "message": "The request body is not valid.",
     "status": 422, "correlation_id": "...",
     "fields": {"patient.nik": ["Must be exactly 16 digits."]}}

``code`` is stable and machine-readable; ``message`` is for people; ``fields`` (validation
only) maps dotted field paths to messages; ``details`` (some codes only) carries structured
help, such as the next departures that have seats. No HTML page and no stack trace ever reaches a
caller: unexpected exceptions are logged with the correlation id and answered with
``internal_error``.

This is the edge where the domain's errors (:mod:`gateway.errors`, which speak of things not
found, conflicts, invalid input) become HTTP: :data:`gateway.error_status.STATUS_OF` is the
one table from an error's class to its status (the console reads it too); the code, message,
fields and details are the domain error's own. :class:`ApiError` is for what only HTTP knows
(a body that is not JSON, a media type) and is raised in ``gateway/api/`` only.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from marshmallow import Schema, fields
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from ..db import DatabaseUnavailable, is_outage
from ..error_status import status_of
from ..errors import GatewayError, TooManyRequests, Unauthenticated
from ..ratelimit import retry_after_header

log = logging.getLogger(__name__)

# HTTP status -> stable code for errors raised by Flask/Werkzeug themselves.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

class ApiError(Exception):
    """An error only HTTP has (credentials, media types, rate limits), by a stable code."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None,
                 headers: dict | None = None, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers, self.details = fields, headers or {}, details


def error_response(status: int, code: str, message: str, fields: dict | None = None,
                   headers: dict | None = None, **extra):
    body = {"code": code, "message": message, "status": status,
            "correlation_id": g.get("correlation_id"), **extra}
    if fields is not None:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ErrorSchema(Schema):
    """The error shape, for the OpenAPI document."""

    code = fields.String(required=True, metadata={"description": "Stable machine-readable code."})
    message = fields.String(required=True, metadata={"description": "What went wrong, for people."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status."})
    correlation_id = fields.String(allow_none=True,
                                   metadata={"description": "Quote it when asking for help."})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Readiness only: each dependency and its state."})
    details = fields.Dict(allow_none=True, metadata={
        "description": "Some codes only: structured help (e.g. alternatives)."})
    fields_ = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), data_key="fields",
        metadata={"description": "Validation only: dotted field path -> messages."})


def _api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers,
                          **({"details": exc.details} if exc.details is not None else {}))


def _domain_error(exc: GatewayError):
    status = status_of(exc)
    if status == 500:
        log.error("a domain error no status is known for: %s (%s)", type(exc).__name__,
                  exc.code)
    headers = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = retry_after_header(exc.retry_after)
    return error_response(status, exc.code, exc.message, exc.fields, headers,
                          **({"details": exc.details} if exc.details is not None else {}))


def _http_error(exc: HTTPException):
    status = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    message = exc.description or exc.name
    if status == 413:
        message = "The request body is larger than this endpoint accepts."
    return error_response(status, HTTP_CODES.get(status, f"http_{status}"), message,
                          headers=headers)


def _unavailable(exc: Exception):
    log.error("dependency unavailable on %s %s: %s", request.method, request.path,
              type(exc).__name__)
    return error_response(503, "service_unavailable",
                          "A dependency of the gateway is unavailable; nothing was stored. "
                          "Try again shortly.", headers={"Retry-After": "5"})


def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unexpected error on %s %s (correlation %s)", request.method, request.path,
                  g.get("correlation_id"))
    return error_response(500, "internal_error",
                          "The gateway failed unexpectedly; the error is logged.")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(GatewayError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseUnavailable, _unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(PoolTimeout, _database_error)
    app.register_error_handler(RedisError, _unavailable)
    app.register_error_handler(Exception, _unexpected)


def _database_error(exc: SQLAlchemyError):
    """A database outage (see :func:`gateway.db.is_outage`) is 503; any other database error
    is a failure of ours (500)."""
    if is_outage(exc):
        return _unavailable(exc)
    return _unexpected(exc)
