"""Liveness and readiness, for load balancers and orchestrators (public, no credentials);
Prometheus metrics, for a scraper (no API key, but a token of its own or loopback only)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from .. import reports
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


def _queues(gateway) -> dict:
    """Per queue, what waits (jobs and ids listed for batch jobs) and for how long."""
    try:
        with gateway.db.read() as session:
            figures = reports.gateway_queue_figures(gateway, session)
    except (RedisError, SQLAlchemyError):
        return {}
    return {q.name: {"waiting": q.depth + q.listed, "oldest_age_seconds": q.oldest_age_seconds,
                     "lagging": q.lagging} for q in figures}


@bp.get("/readyz")
@public
def readyz():
    """The database and Redis answer; 503 with the error shape otherwise.

    Work falling behind does not make the gateway unready: it still accepts and stores every
    request (taking it out of a load balancer would only refuse more). It stays 200 and says
    ``lagging: true`` when a queue's oldest waiting job is older than
    ``jobs.max_queue_age_seconds``; ``queues`` tells which, how many wait and for how long.
    ---
    get:
      operationId: checkReadiness
      summary: "Readiness: database and Redis reachable; queues and their age"
      security: []
      responses:
        200:
          description: Ready (``lagging`` when work is falling behind).
          content: {application/json: {schema: ReadinessSchema}}
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
        queues = _queues(gateway)
        return jsonify(status="ready", checks=checks, queues=queues,
                       lagging=any(q["lagging"] for q in queues.values()))
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
