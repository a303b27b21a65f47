"""Liveness and readiness, for load balancers and orchestrators (public, no credentials)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ..errors import error_response
from . import public

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz():
    """The database and Redis answer; 503 with the error shape otherwise."""
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
