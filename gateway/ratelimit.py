"""Rate limits per agency and key type: a token bucket in Redis, shared by every API node.

Each agency has one bucket per key type (``live``, ``test``), refilled at ``rate`` tokens a
second up to ``burst``; every authenticated call takes one token. An empty bucket answers
429 ``rate_limited`` with ``Retry-After`` (whole seconds until a token is back). The bucket
is updated atomically by a Lua script, so concurrent calls on several nodes cannot overdraw
it. If Redis cannot be reached the call is let through and the lapse logged: a rate limiter
must not turn a Redis outage into an API outage (intake already survives one).
"""

from __future__ import annotations

import logging
import math
import time

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate, burst, now (seconds, float). Returns {allowed, wait_ms}.
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait_ms}
"""


class RateLimiter:
    def __init__(self, redis, limits: dict[str, dict]):
        """:param limits: per key type, ``{"rate": per second, "burst": tokens}``"""
        self.redis = redis
        self.limits = limits
        self._script = redis.register_script(BUCKET_SCRIPT)

    def check(self, agency_id: str, key_type: str) -> float | None:
        """Take a token. :return: None when allowed, else seconds to wait."""
        rule = self.limits.get(key_type)
        if not rule:
            return None
        try:
            allowed, wait_ms = self._script(
                keys=[f"gateway:ratelimit:{agency_id}:{key_type}"],
                args=[rule["rate"], rule["burst"], f"{time.time():.6f}"])
        except RedisError as exc:
            log.warning("rate limit not applied: Redis unavailable (%s)", type(exc).__name__)
            return None
        return None if allowed else max(wait_ms / 1000, 0.001)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


# KEYS[1] counter; ARGV[1] window seconds. The window starts with the first count, in the same
# script, so a count never lives without its expiry.
COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return n
"""


class FailedKeyLimiter:
    """Wrong API keys per client address, in a fixed window that starts at the first one.

    An address past ``attempts`` is refused (429 ``too_many_failed_keys``) before its key is
    even looked at, until the window ends. Failures are counted atomically (INCR and the
    window's EXPIRE in one Lua script); calls already in flight when the limit is
    reached still get their answer, so an address may exceed it by its concurrent calls: a
    key has 238 random bits, so this limit is against floods and noise, not against a guess
    coming true. Calls without any credentials are not counted. Like the buckets, it lets
    calls through when Redis is down.
    """

    def __init__(self, redis, attempts: int, window_seconds: int):
        self.redis, self.attempts, self.window = redis, attempts, window_seconds

    @staticmethod
    def _key(address: str) -> str:
        return f"gateway:failed-keys:{address}"

    def wait(self, address: str) -> int | None:
        """:return: None when a key from ``address`` may be checked, else seconds to wait"""
        try:
            pipe = self.redis.pipeline()
            pipe.get(self._key(address))
            pipe.ttl(self._key(address))
            count, ttl = pipe.execute()
        except RedisError as exc:
            log.warning("failed-key limit not applied: Redis unavailable (%s)",
                        type(exc).__name__)
            return None
        if count is None or int(count) < self.attempts:
            return None
        return max(int(ttl), 1)

    def failed(self, address: str) -> None:
        try:
            self.redis.eval(COUNT_SCRIPT, 1, self._key(address), self.window)
        except RedisError as exc:
            log.warning("failed key not counted: Redis unavailable (%s)", type(exc).__name__)
