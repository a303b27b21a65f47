"""Who is at the console: the ``actor_from_request`` hook for console pages, and sign-in.

Console pages are authenticated like every other route, by the app's one ``before_request``
asking the ``actor_from_request`` hook; this implementation answers only for the console
blueprint, from the session cookie, so a console cookie never authenticates an API call.
"""

from __future__ import annotations

import secrets

from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy.exc import SQLAlchemyError

from ..events import Event
from ..hookspecs import hookimpl
from ..models import AdminUser, Agency
from . import sessions, throttle
from .i18n import gettext as _
from .i18n import ngettext
from .users import authenticate, mark_signed_in


@hookimpl
def actor_from_request(gateway, request):
    if request.blueprint != "console":
        return None
    record = sessions.load(gateway.redis, session.get("sid"))
    if record is None:
        return None
    with gateway.db.read() as db_session:
        user = db_session.get(AdminUser, record["user_id"])
        if user is None or not user.active:
            return None
        actor = {"type": "admin", "id": user.username, "role": user.role,
                 "user_id": user.id, "language": user.language}
        if user.agency_id is not None:      # agency staff: see agency_actor.py
            agency = db_session.get(Agency, user.agency_id)
            if agency is None or not agency.active:
                return None                 # as the agency's keys stop working
            actor.update(agency_id=agency.id, agency_name=agency.name,
                         key_type=user.key_type)
        return actor


def new_csrf_token() -> str:
    session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def csrf_token() -> str:
    return session.get("csrf") or new_csrf_token()


def client_address() -> str:
    """The client's address: the peer's, or with ``trusted_proxies`` set, the one our own
    proxies forwarded (ProxyFix, see ``create_app``)."""
    return request.remote_addr or "unknown"


def sign_in(gateway, username: str, password: str):
    """Check the password and start a new session; return an error text or None.

    The attempt is counted before the password is checked (``throttle.begin_attempt``).
    """
    address = client_address()
    wait = throttle.begin_attempt(gateway.redis, username, address)
    if wait is not None:
        return 429, ngettext("Too many failed sign-ins. Try again in %(num)s minute.",
                             "Too many failed sign-ins. Try again in %(num)s minutes.",
                             max(1, round(wait / 60))), wait
    user = authenticate(gateway, username, password)
    if user is None:
        with gateway.db.write() as db_session:
            gateway.track(db_session, Event("admin.sign_in", actor=f"admin:{username[:64]}",
                                            outcome="refused",
                                            correlation_id=g.get("correlation_id")))
        return 401, _("Wrong username or password."), None
    throttle.succeeded(gateway.redis, username, address)
    old_sid = session.get("sid")
    sessions.end(gateway.redis, old_sid)
    session.clear()                       # a new session at sign-in, never the old one
    session["sid"] = sessions.start(gateway.redis, user.id)
    session["language"] = user.language
    session.permanent = True
    new_csrf_token()
    mark_signed_in(gateway, user.id)
    with gateway.db.write() as db_session:
        gateway.track(db_session, Event("admin.sign_in", actor=f"admin:{user.username}",
                                        correlation_id=g.get("correlation_id")))
    return None


def sign_out(gateway) -> None:
    sessions.end(gateway.redis, session.get("sid"))
    actor = g.get("actor")
    session.clear()
    if actor:
        try:
            with gateway.db.write() as db_session:
                gateway.track(db_session, Event("admin.sign_out", actor=f"admin:{actor['id']}",
                                                correlation_id=g.get("correlation_id")))
        except SQLAlchemyError:
            current_app.logger.warning("could not audit a sign-out")


def to_sign_in():
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("console.sign_in", next=target.rstrip("?") if target else None))
