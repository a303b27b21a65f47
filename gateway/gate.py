"""The gate every HTTP request passes, whichever room serves it (the API, the console, a
plugin's route): a correlation id, the caller's credentials unless the view is marked public,
the rate limits; and the headers every answer carries.

Authentication is not attached per view: a single ``before_request`` asks the
``actor_from_request`` hook for every endpoint, including those that plugins add, unless the
view is explicitly decorated with :func:`public`. A test walks the URL map to keep it so.
The console's pages pass it too: the console answers the same hook from its session cookie
(``gateway.console.auth``).

An API key this process recognised in the last second is checked in one round trip to Redis
(``gateway.gatelook``): the address's wrong-key count, the key's version and the agency's
rate limit together; any other call asks each on its own.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, current_app, g, request

from .auth import known_key
from .context import CORRELATION_HEADER, correlation_id
from .errors import TooManyRequests, Unauthenticated
from .ratelimit import source_of

_CORRELATION_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def public(view):
    """Mark a view as reachable without credentials (health checks, the API description)."""
    view.gateway_public = True
    return view


def is_public(app: Flask, endpoint: str | None) -> bool:
    view = app.view_functions.get(endpoint) if endpoint else None
    return bool(getattr(view, "gateway_public", False))


def _begin_request():
    supplied = request.headers.get(CORRELATION_HEADER, "")
    g.correlation_id = supplied if _CORRELATION_PATTERN.match(supplied) else uuid.uuid4().hex
    correlation_id.set(g.correlation_id)
    g.actor = None
    if request.endpoint is None or is_public(current_app, request.endpoint):
        return
    gateway = current_app.extensions["gateway"]
    # A credential sent to the API (console pages keep their own sign-in throttle).
    presented = request.blueprint != "console" and "Authorization" in request.headers
    source = source_of(request.remote_addr) if presented else None
    if presented:
        known = known_key(gateway, request)
        verdict = gateway.gate_look.look(source, *known) if known is not None else None
        if verdict is not None and verdict[0] != "stale":    # one round trip said it all
            what, wait = verdict
            if what == "blocked":
                raise _too_many_failed_keys(wait)
            g.actor = known[1]
            if what == "limited":
                raise _rate_limited(wait)
            return
        wait = gateway.failed_keys.wait(source)
        if wait is not None:
            raise _too_many_failed_keys(wait)
    actor = gateway.pm.hook.actor_from_request(gateway=gateway, request=request)
    if actor is None:
        if presented:
            gateway.failed_keys.failed(source)
        raise Unauthenticated("unauthenticated",
                              "Send a valid, unrevoked API key as 'Authorization: Bearer <key>'.")
    g.actor = actor
    if actor.get("type") == "agency":
        wait = gateway.rate_limiter.check(actor["id"], actor.get("key_type", "live"))
        if wait is not None:
            raise _rate_limited(wait)


def _too_many_failed_keys(wait: float) -> TooManyRequests:
    return TooManyRequests("too_many_failed_keys", "Too many calls with a wrong API key from "
                           "this address; retry after the time in Retry-After.",
                           retry_after=wait)


def _rate_limited(wait: float) -> TooManyRequests:
    return TooManyRequests("rate_limited", "Too many calls for this agency's keys; slow down "
                           "and retry after the time in Retry-After.", retry_after=wait)


def _end_request(response):
    response.headers[CORRELATION_HEADER] = g.get("correlation_id", "")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def init_app(app: Flask) -> None:
    app.before_request(_begin_request)
    app.after_request(_end_request)
