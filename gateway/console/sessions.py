"""Console sessions, kept in Redis: the browser holds only a random id in a signed cookie.

A server-side session can really end: signing out deletes it, and signing in always starts
a new one (the id from before sign-in is never reused, which defeats session fixation).
Sessions expire after ``IDLE_SECONDS`` without use and ``MAX_SECONDS`` after sign-in.
"""

from __future__ import annotations

import json
import secrets
import time

IDLE_SECONDS = 2 * 3600
MAX_SECONDS = 12 * 3600
_KEY = "gateway:console:session:{}"


def start(redis, user_id: str) -> str:
    sid = secrets.token_urlsafe(32)
    record = {"user_id": user_id, "started": time.time(),
              "csrf": secrets.token_urlsafe(32)}
    redis.set(_KEY.format(sid), json.dumps(record), ex=IDLE_SECONDS)
    return sid


def load(redis, sid: str | None) -> dict | None:
    """The live session record, its idle timer renewed; None if missing or expired."""
    if not sid:
        return None
    key = _KEY.format(sid)
    raw = redis.get(key)
    if raw is None:
        return None
    record = json.loads(raw)
    if time.time() - record["started"] > MAX_SECONDS:
        redis.delete(key)
        return None
    redis.expire(key, IDLE_SECONDS)
    return record


def end(redis, sid: str | None) -> None:
    if sid:
        redis.delete(_KEY.format(sid))
