"""The agencies' HTTP API: health, version 1 (services, requests, cancellation), the own
fleet's dispatch list, provider webhooks and the OpenAPI document.

Every request has passed ``gateway.gate`` first (credentials, correlation id, rate limits);
views check permissions, validate with marshmallow and call the core.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The API's blueprints, and the app's error handlers: every failure outside the
    console's pages answers the API's one JSON error shape (``gateway.api.errors``)."""
    from . import errors, fleet, health, openapi, v1, webhooks

    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(v1.bp)
    v1.register_views(app, app.extensions["gateway"])
    app.register_blueprint(fleet.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(openapi.bp)
