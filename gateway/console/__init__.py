"""The admin web console: server-rendered pages under ``/console``.

One blueprint; each part of the console is a module in ``views/`` that adds its routes to
it. Every view states the action it needs with :func:`requires`, checked through the
``permission_allowed`` hook (see ``roles.py``), and templates ask :func:`can` with the same
action names before they show a link, a button or a form. Every form carries a CSRF token
and every change is audited with the user's name (:func:`audit`).
"""

from __future__ import annotations

import hmac
import importlib
from datetime import timedelta
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

import flask_babel
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    render_template,
    request,
    send_from_directory,
    session,
)
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from ..db import DatabaseUnavailable
from ..error_status import status_of
from ..errors import GatewayError
from ..events import Event
from ..gate import public
from . import i18n
from .i18n import N_

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
STATIC = Path(__file__).parent / "static"

VIEW_MODULES = ("session", "dashboard", "requests", "request_form", "uploads", "fleet",
                "agencies", "staff", "budgets", "statements", "services", "audit", "queues",
                "skm", "reports", "messages")

#: the menu: (endpoint, label, action needed to see it)
NAV = (
    ("console.dashboard", "Dashboard", "console:dashboard"),
    ("console.requests", "Requests", "console:requests:read"),
    ("console.fleet", "Fleet dispatch", "console:fleet:read"),
    ("console.agencies", "Agencies", "console:agencies:read"),
    ("console.services", "Services and providers", "console:config:read"),
    ("console.audit", "Audit", "console:audit:read"),
    ("console.queues", "Queues", "console:queues:read"),
    ("console.skm_page", "Satisfaction survey (SKM)", "console:skm:read"),
    ("console.reports_page", "Reports", "console:reports:read"),
    ("console.messages", "Messages", "console:messages:read"),
    ("console.my_staff", "Staff accounts", "console:staff:own"),
    ("console.my_statements", N_("Statements"), "console:statements:own"),
)

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def gateway():
    return current_app.extensions["gateway"]


def can(action: str, resource=None) -> bool:
    """May the signed-in user do ``action``? The same question the view itself asks."""
    return gateway().allowed(g.get("actor"), action, resource)


def requires(action: str):
    """Refuse the view (403) unless the signed-in user may do ``action``."""

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if not can(action):
                abort(403)
            return view(*args, **kwargs)

        guarded.console_action = action
        return guarded

    return decorate


def audit(db_session, action: str, target: str | None = None, outcome: str = "ok",
          **details) -> None:
    """Record a console action in the audit trail, in the caller's transaction."""
    actor = g.get("actor") or {}
    gateway().track(db_session, Event(action, actor=f"admin:{actor.get('id', 'anonymous')}",
                                      target=target, outcome=outcome, details=details,
                                      correlation_id=g.get("correlation_id")))


def render(template: str, status: int = 200, /, **context):
    return render_template(template, **context), status


def _check_csrf():
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="csrf")


def _choose_language():
    actor = g.get("actor")
    g.language = (actor or {}).get("language") or session.get("language")
    flask_babel.refresh()       # in case anything asked for the language before this


def _content_security_policy() -> str:
    """The policy, letting map tiles come from the configured tile server only."""
    tiles = gateway().settings["console"].get("map_tiles_url") or ""
    parts = urlsplit(tiles)
    host = parts.netloc.replace("{s}", "*")     # Leaflet's subdomains: a.tile..., b.tile...
    if parts.scheme in ("http", "https") and host and not set("{}; '\"") & set(host):
        return CONTENT_SECURITY_POLICY.replace(
            "img-src 'self' data:", f"img-src 'self' data: {parts.scheme}://{host}")
    return CONTENT_SECURITY_POLICY


def _security_headers(response):
    response.headers["Content-Security-Policy"] = _content_security_policy()
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


@bp.app_template_global("nav_items")
def nav_items():
    return [(endpoint, label) for endpoint, label, action in NAV
            if endpoint in current_app.view_functions and can(action)]


def _template_context():
    from .auth import csrf_token

    here = gateway().region
    return {"_": i18n.gettext, "ngettext": i18n.ngettext, "can": can,
            "csrf_token": csrf_token, "actor": g.get("actor"),
            "language": i18n.current_language(), "languages": i18n.LANGUAGES,
            "region_name": here.name, "time_zone_label": here.zone_label(),
            "time_zone_name": here.zone_name}


def _error_page(error):
    from .auth import to_sign_in

    if isinstance(error, GatewayError):
        status = status_of(error)
    else:
        status = getattr(error, "status", None) or getattr(error, "code", 500) or 500
    if status == 401:
        return to_sign_in()
    reason = {400: N_("The form has expired or did not come from this console. Reload the "
                      "page and try again.") if getattr(error, "description", "") == "csrf"
                   else N_("The request is not valid."),
              403: N_("Your role does not allow this."),
              404: N_("There is nothing here."),
              405: N_("This page cannot be used that way."),
              413: N_("The file is too large. Split it into smaller files and upload each."),
              429: N_("Too many attempts. Wait a little and try again."),
              503: N_("A service the gateway needs is not reachable. Try again soon.")
              }.get(status, N_("Something went wrong. The problem has been logged."))
    response = render_template("console/error.html", status=status, reason=reason)
    headers = dict(getattr(error, "headers", None) or {})
    headers.pop("WWW-Authenticate", None)
    return response, status, headers


@bp.route("/static/<path:filename>")
@public
def static(filename):
    """Style sheet and script: public, so the sign-in page is styled too."""
    return send_from_directory(STATIC, filename, max_age=3600)


def _body_limit():
    """A view that takes files (``takes_files``) gets its own cap on the body, checked
    before the CSRF check reads the form; every other page keeps the app's."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "console_max_body", None)
    if limit is not None and request.method in UNSAFE_METHODS:
        if request.content_length is not None and request.content_length > limit:
            abort(413)
        request.max_content_length = limit


def takes_files(max_bytes: int):
    """Let a view receive files of up to ``max_bytes`` (with the form around them)."""

    def decorate(view):
        view.console_max_body = max_bytes + 64 * 1024
        return view

    return decorate


bp.before_request(_choose_language)
bp.before_request(_body_limit)
bp.before_request(_check_csrf)
bp.after_request(_security_headers)
bp.context_processor(_template_context)
bp.app_template_filter("local_time")(i18n.local_time)
bp.app_template_filter("number")(i18n.number)
bp.app_template_filter("money")(i18n.money)
def _failure_page(error: Exception):
    """Anything a console page raised: a page, never JSON and never a traceback."""
    if isinstance(error, HTTPException | GatewayError):
        return _error_page(error)
    if isinstance(error, RedisError | DBAPIError | DatabaseUnavailable):
        current_app.logger.error("console page: dependency unavailable: %s",
                                 type(error).__name__)
        return _error_page(ServiceUnavailable())
    current_app.logger.exception("console page failed (correlation %s)",
                                 g.get("correlation_id"))
    return _error_page(InternalServerError())


bp.register_error_handler(Exception, _failure_page)
for _name in VIEW_MODULES:
    importlib.import_module(f"{__name__}.views.{_name}")


def init_app(app: Flask) -> None:
    gw = app.extensions["gateway"]
    app.secret_key = gw.cookie_secret
    console_settings = gw.settings["console"]
    secure = console_settings["secure_cookies"]
    app.config.update(
        SESSION_COOKIE_NAME="gateway_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=(gw.settings["mode"] == "live") if secure is None else secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    i18n.init_app(app)
    app.register_blueprint(bp)
