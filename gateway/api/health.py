"""Liveness and readiness, for load balancers and orchestrators (public, no credentials);
Prometheus metrics, for a scraper (no API key, but a token of its own or loopback only)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ..gate import public
from ..metrics import exposition, scrape_allowed
from .errors import ApiError, error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    """The process is up.
    ---
    get:
      operationId: checkLiveness
      summary: Liveness
      security: []
      responses:
        200:
          description: Up.
          content: {application/json: {schema: HealthSchema}}
    """
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz():
    """The database and Redis answer; 503 with the error shape otherwise.
    ---
    get:
      operationId: checkReadiness
      summary: "Readiness: database and Redis reachable"
      security: []
      responses:
        200:
          description: Ready.
          content: {application/json: {schema: HealthSchema}}
        503:
          description: Not ready.
          content: {application/json: {schema: ErrorSchema}}
    """
    gateway = current_app.extensions["gateway"]
    checks = {}
    try:
        gateway.db.ping()
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        gateway.redis.ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return jsonify(status="ready", checks=checks)
    return error_response(503, "not_ready", "A dependency of the gateway is unavailable.",
                          checks=checks)


@bp.get("/metrics")
@public
def metrics():
    """Prometheus text format (see ``gateway.metrics``). Not an agency's route: API keys
    open nothing here; ``metrics.token`` does, or, with none set, a loopback caller."""
    gateway = current_app.extensions["gateway"]
    if not scrape_allowed(gateway.settings["metrics"]["token"]):
        raise ApiError(403, "forbidden", "Metrics need 'Authorization: Bearer <metrics token>'"
                       ", or a loopback caller when no metrics token is configured.")
    body, content_type = exposition(gateway, request.headers.get("Accept"))
    return Response(body, content_type=content_type)
