"""The core's default authentication: ``Authorization: Bearer <agency API key>``.

Registered through ``actor_from_request``. A key is found by its prefix and checked against
the stored SHA-256 in constant time; revoked keys and inactive agencies are not recognised.
The actor carries the key's type: requests made with a ``test`` key only ever reach sandbox
couriers.

Looking a key up costs a database session on every API call, so recognised keys are kept in
a small per-process cache (:class:`KeyCache`). Revocation reaches every process within a
second, whatever Redis it can or cannot see:

* every committed change to a key or an agency, from any process, bumps a version number in
  Redis (:func:`watch_key_changes`), and a cached entry counts only while that number is the
  one it was read under: a process on the same Redis refuses a revoked key at once;
* a cached entry is trusted for at most :data:`TRUST_SECONDS` whatever the version says, so
  a change whose bump never reached this process's Redis (Redis down, or the changing process
  on another Redis) is read from the database within that time;
* when the version cannot be read the cache is bypassed and every call reads the database.

The cost is one indexed read per key per process per second under load; a cached entry
answers every other call.
"""

from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import RedisError
from sqlalchemy import event, select
from sqlalchemy.orm import joinedload

from .hookspecs import hookimpl
from .keys import key_matches, parse_key
from .models import Agency, ApiKey

VERSION_KEY = "gateway:auth:version"
#: the longest a process answers from a key it read before, without reading it again
TRUST_SECONDS = 1.0
log = logging.getLogger(__name__)


class KeyCache:
    """Recognised keys by prefix: ``prefix -> (version, stored hash, actor, read at)``.

    Bounded in size and age; an entry is used only under the Redis version it was read at,
    and for at most ``max_age_seconds`` (the bound on revocation when the version misses a
    change).
    """

    def __init__(self, max_entries: int = 4096, max_age_seconds: float = TRUST_SECONDS):
        self.max_entries, self.max_age = max_entries, max_age_seconds
        self._entries: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def get(self, prefix: str, version) -> tuple[str, dict] | None:
        entry = self.recent(prefix)
        if entry is None or entry[0] != version:
            return None
        return entry[1], entry[2]

    def recent(self, prefix: str) -> tuple | None:
        """``(version, stored hash, actor)`` of a key read less than ``max_age_seconds`` ago,
        whatever the version now is (the caller checks it)."""
        entry = self._entries.get(prefix)
        if entry is None or time.monotonic() - entry[3] > self.max_age:
            return None
        return entry[:3]

    def put(self, prefix: str, version, key_hash: str, actor: dict) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[prefix] = (version, key_hash, actor, time.monotonic())


def _version(gateway):
    """The current key version, or None when Redis cannot say (then: no caching)."""
    try:
        return gateway.redis.get(VERSION_KEY) or b"0"
    except RedisError:
        return None


def watch_key_changes(database, redis) -> None:
    """Bump the key version after every commit that changed a key or an agency."""

    @event.listens_for(database.session_factory, "before_flush")
    def _note(session, _context, _instances):
        changed = (*session.new, *session.dirty, *session.deleted)
        if any(isinstance(obj, ApiKey | Agency) for obj in changed):
            session.info["auth_changed"] = True

    @event.listens_for(database.session_factory, "after_commit")
    def _bump(session):
        if session.info.pop("auth_changed", False):
            try:
                redis.incr(VERSION_KEY)
            except RedisError:
                # Other processes keep a revoked key for at most TRUST_SECONDS.
                log.warning(
                    "could not publish a key change to other processes (Redis unavailable)")


def bearer_token(request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def known_key(gateway, request) -> tuple[bytes, dict] | None:
    """The request's API key as this process recognised it a moment ago, without Redis:
    ``(the key version it was read under, its actor)``, or None (no such key in the cache,
    or not this key). The gate then checks the version in its one look at Redis
    (``gateway.gatelook``), with the failed-key count and the rate limit; a changed version
    sends it the long way, through :func:`actor_from_request`."""
    token = bearer_token(request)
    parsed = parse_key(token) if token else None
    entry = gateway.key_cache.recent(parsed[0]) if parsed else None
    if entry is None:
        return None
    version, key_hash, actor = entry
    return (version, dict(actor)) if key_matches(token, key_hash) else None


@hookimpl
def actor_from_request(gateway, request):
    if request.blueprint == "console":
        return None   # console pages are for people signed in, never for API keys
    token = bearer_token(request)
    parsed = parse_key(token) if token else None
    if not parsed:
        return None
    prefix, _key_type = parsed
    version = _version(gateway)
    cached = gateway.key_cache.get(prefix, version) if version is not None else None
    if cached is not None:
        key_hash, actor = cached
        return dict(actor) if key_matches(token, key_hash) else None
    with gateway.db.read() as session:
        key = session.execute(
            select(ApiKey).options(joinedload(ApiKey.agency)).where(ApiKey.prefix == prefix)
        ).scalar_one_or_none()
        if key is None or key.revoked_at is not None or not key.agency.active:
            return None
        if not key_matches(token, key.key_hash):
            return None
        actor = {
            "type": "agency",
            "id": key.agency_id,
            "name": key.agency.name,
            "services": list(key.agency.services or []),
            "roles": list(key.agency.roles or []),
            "key_id": key.id,
            "key_prefix": key.prefix,
            "key_type": key.key_type,
        }
        if version is not None:
            gateway.key_cache.put(prefix, version, key.key_hash, actor)
        return dict(actor)
