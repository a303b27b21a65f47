"""The gate's one look at Redis for an API key this process knows.

Three questions guard every API call, each kept in Redis so that every node shares it: is
this address held back for wrong keys (``api.failed_key_limit``), is the key still what it
was when this process read it (the key version of ``gateway.auth``), and may its agency
call again now (the token bucket of ``gateway.ratelimit``). Asked apart they are three round
trips, about a third of a millisecond of CPU each under load; a key seen in the last second
(:func:`gateway.auth.known_key`) is asked all three in one script, atomically. A token is
taken only when the address is not held back and the key has not changed: a revoked key,
like a held-back address, never spends its agency's tokens.

A key not in the cache, a changed version or Redis unreachable goes the long way (the
``actor_from_request`` hook and each check on its own), which knows what each case means.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from .ratelimit import BUCKET_FUNCTION, FailureLimiter, RateLimiter

# KEYS: the address's failed-key count, the key version, the agency's bucket.
# ARGV: the failure limit, the version the key was read under, rate (0: no limit), burst, now.
# Returns {verdict, ms}: blocked (ms left of the window), stale, allowed or limited (ms to wait).
LOOK_SCRIPT = BUCKET_FUNCTION + """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then
  return {'blocked', redis.call('PTTL', KEYS[1])}
end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then
  return {'stale', 0}
end
local rate = tonumber(ARGV[3])
if rate <= 0 then
  return {'allowed', 0}
end
local taken = take(KEYS[3], rate, tonumber(ARGV[4]), tonumber(ARGV[5]))
if taken[1] == 1 then
  return {'allowed', 0}
end
return {'limited', taken[2]}
"""


class GateLook:
    """:meth:`look`: the three answers for a known key in one round trip."""

    def __init__(self, redis, failed_keys: FailureLimiter, rate_limiter: RateLimiter,
                 version_key: str):
        self.failed_keys, self.rate_limiter = failed_keys, rate_limiter
        self.version_key = version_key
        self._script = redis.register_script(LOOK_SCRIPT)

    def look(self, source: str, version: bytes, actor: dict) -> tuple[str, float | None] | None:
        """``("blocked", seconds)``, ``("stale", None)``, ``("allowed", None)`` or
        ``("limited", seconds)``; None when Redis cannot be asked."""
        key_type = actor.get("key_type", "live")
        rule = self.rate_limiter.limits.get(key_type) or {}
        try:
            verdict, ms = self._script(
                keys=[self.failed_keys.key(source), self.version_key,
                      RateLimiter.bucket_key(actor["id"], key_type)],
                args=[self.failed_keys.limit, version, rule.get("rate", 0),
                      rule.get("burst", 0), f"{time.time():.6f}"])
        except RedisError:
            return None
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        if verdict == "blocked":
            return verdict, max(int(ms), 1) / 1000
        if verdict == "limited":
            return verdict, max(int(ms) / 1000, 0.001)
        return verdict, None
