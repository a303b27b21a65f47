"""What every public page shares: the blueprint, the reader's language, the rate limit per
client address, the headers that keep a page out of search engines and out of Referer
headers, and finding a request by its token (``gateway.links``)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

from flask import Blueprint, current_app, g, render_template, request
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from ..db import DatabaseUnavailable
from ..links import digest, well_formed
from ..models import ServiceRequest, StatusEvent, utcnow
from ..ratelimit import retry_after_header, source_of
from ..statuses import TERMINAL
from . import texts

bp = Blueprint("public", __name__, template_folder="templates")

#: the pages' only style, inline (no file to fetch on a slow line); allowed by its hash
STYLE = ("body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:12px;color:#1a1a1a;"
         "max-width:40rem}h1{font-size:1.3rem;margin:.2rem 0 .8rem}h2{font-size:1.05rem;"
         "margin:1.2rem 0 .4rem}.now{font-size:1.2rem;font-weight:600;padding:.6rem;"
         "background:#eef6ee;border-radius:6px}ol{padding-left:1.2rem}li{margin:.2rem 0}"
         "small,.muted{color:#555}nav{float:right}fieldset{border:1px solid #ccc;"
         "border-radius:6px;margin:.6rem 0;padding:.4rem .6rem}legend{font-weight:600}"
         "label{display:block;padding:.25rem 0}textarea{width:100%;box-sizing:border-box}"
         ".err{color:#a00;font-weight:600}button{font-size:1rem;padding:.6rem 1.4rem}"
         "a{color:#0645ad}")
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def gateway():
    return current_app.extensions["gateway"]


def _choose_language():
    chosen = request.args.get("lang") or request.form.get("lang")
    g.public_language = chosen if chosen in texts.LANGUAGES else (
        gateway().region.locale if gateway().region.locale in texts.LANGUAGES else "id")


def _rate_limit():
    """Every public view takes a token of its client address's bucket (one atomic script,
    ``gateway.ratelimit``): a token cannot be guessed, but pages are not for crawling."""
    wait = gateway().public_limiter.check(f"public:{source_of(request.remote_addr)}",
                                          "public")
    if wait is not None:
        return page("public/message.html", 429, {"Retry-After": retry_after_header(wait)},
                    title=texts.gettext("Too many requests"),
                    message=texts.gettext("Please wait a moment and try again."))
    return None


def _headers(response):
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _context():
    return {"_": texts.gettext, "language": texts.language(), "style": STYLE,
            "status_label": texts.status_label}


def page(template: str, status: int = 200, headers: dict | None = None, **context):
    return render_template(template, **context), status, headers or {}


def not_found():
    """The one answer for an unknown, malformed or expired token: nothing tells them apart."""
    return page("public/message.html", 404, title=texts.gettext("Page not found"),
                message=texts.gettext("This link is not valid or has expired."))


def ended_at(session, record: ServiceRequest):
    """When the request reached its end (the first applied terminal status), or None."""
    if record.status not in {str(s) for s in TERMINAL}:
        return None
    return session.scalar(select(StatusEvent.created_at).where(
        StatusEvent.request_id == record.id, StatusEvent.applied.is_(True),
        StatusEvent.status.in_([str(s) for s in TERMINAL])).order_by(StatusEvent.id).limit(1)
    ) or record.updated_at


def find(session, token: str) -> ServiceRequest | None:
    """The request of ``token`` while its pages answer: None for a malformed or unknown
    token and ``public.tracking_days_after_end`` days after the request ended."""
    if not well_formed(token):
        return None
    record = session.scalar(select(ServiceRequest).where(
        ServiceRequest.tracking_digest == digest(token)))
    if record is None:
        return None
    end = ended_at(session, record)
    days = gateway().settings["public"]["tracking_days_after_end"]
    if end is not None and utcnow() > end + timedelta(days=days):
        return None
    return record


def _failure_page(error: Exception):
    """Anything a public page raised: a page in the reader's language, never JSON nor a
    trace (the database or Redis away: 503)."""
    if isinstance(error, RedisError | DBAPIError | DatabaseUnavailable):
        current_app.logger.error("public page: dependency unavailable: %s",
                                 type(error).__name__)
        status = 503
    elif isinstance(getattr(error, "code", None), int) and 400 <= error.code < 600:
        status = error.code                                 # Flask's own: 404, 405...
    else:
        current_app.logger.exception("public page failed (correlation %s)",
                                     g.get("correlation_id"))
        status = 500
    if status == 404:
        return not_found()
    if not g.get("public_language"):
        g.public_language = "id"
    return page("public/message.html", status, title=texts.gettext("Sorry"),
                message=texts.gettext("Please wait a moment and try again."))


bp.register_error_handler(Exception, _failure_page)
bp.before_request(_choose_language)
bp.before_request(_rate_limit)
bp.after_request(_headers)
bp.context_processor(_context)
