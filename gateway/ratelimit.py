"""Rate limits per agency and key type: a token bucket in Redis, shared by every API node.

Each agency has one bucket per key type (``live``, ``test``), refilled at ``rate`` tokens a
second up to ``burst``; every authenticated call takes one token. An empty bucket answers
429 ``rate_limited`` with ``Retry-After`` (whole seconds until a token is back). The bucket
is updated atomically by a Lua script, so concurrent calls on several nodes cannot overdraw
it. If Redis cannot be reached the call is let through and the lapse logged: a rate limiter
must not turn a Redis outage into an API outage (intake already survives one).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

from redis.exceptions import RedisError

from .logs import ThrottledLog

log = logging.getLogger(__name__)
#: failures are what strangers cause at will: a Redis outage under a flood of them is one
#: line a minute, not one per failure
_lapses = ThrottledLog(log, 60)

#: the token bucket as a Lua function, shared by :data:`BUCKET_SCRIPT` and the gate's one look
#: at Redis (``gateway.gatelook``): ``take(bucket, rate, burst, now)`` -> {allowed, wait_ms}
BUCKET_FUNCTION = """
local function take(bucket, rate, burst, now)
  local state = redis.call('HMGET', bucket, 'tokens', 'at')
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
  redis.call('HSET', bucket, 'tokens', tokens, 'at', now)
  redis.call('PEXPIRE', bucket, math.ceil(burst / rate * 1000) + 1000)
  return {allowed, wait_ms}
end
"""
# KEYS[1] bucket; ARGV: rate, burst, now (seconds, float). Returns {allowed, wait_ms}.
BUCKET_SCRIPT = BUCKET_FUNCTION + """
return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"""

class RateLimiter:
    def __init__(self, redis, limits: dict[str, dict]):
        """:param limits: per key type, ``{"rate": per second, "burst": tokens}``"""
        self.redis = redis
        self.limits = limits
        self._script = redis.register_script(BUCKET_SCRIPT)

    @staticmethod
    def bucket_key(agency_id: str, key_type: str) -> str:
        return f"gateway:ratelimit:{agency_id}:{key_type}"

    def check(self, agency_id: str, key_type: str) -> float | None:
        """Take a token. :return: None when allowed, else seconds to wait."""
        rule = self.limits.get(key_type)
        if not rule:
            return None
        try:
            allowed, wait_ms = self._script(
                keys=[self.bucket_key(agency_id, key_type)],
                args=[rule["rate"], rule["burst"], f"{time.time():.6f}"])
        except RedisError as exc:
            log.warning("rate limit not applied: Redis unavailable (%s)", type(exc).__name__)
            return None
        return None if allowed else max(wait_ms / 1000, 0.001)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


# KEYS[1] counter; ARGV[1] window (ms). Returns {count, ms left in the window}. A counter
# without an expiry (left by an older version that set it apart) is given one here too.
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


class WindowCounter:
    """Counts in fixed windows that start at the first count: the count and its expiry are
    one atomic script, so no crash or lost connection between an ``INCR`` and an ``EXPIRE``
    can leave a count that never expires. Used for failures: by :class:`FailureLimiter`
    and by the couriers' circuit breaker (``gateway.couriers.circuit``).

    :raises redis.exceptions.RedisError: Redis unreachable (callers decide what that means)
    """

    def __init__(self, redis):
        self._script = redis.register_script(COUNT_SCRIPT)

    def add(self, key: str, window_seconds: float) -> int:
        """Count one at ``key``. :return: the count in the current window"""
        count, _left_ms = self._script(keys=[key], args=[max(1, int(window_seconds * 1000))])
        return int(count)


class FailureLimiter:
    """Counts failures per source in a fixed window, shared by every API node: a source with
    ``limit`` failures in its window is told to wait until the window ends.

    Only failures count (a source whose calls succeed is never held up), and the count is
    one atomic script per failure; looking at a source is one read. If Redis cannot be
    reached, nothing is limited (as :class:`RateLimiter`).

    Used for refused webhooks and for wrong API keys per client address. For keys, calls
    already in flight when the limit is reached still get their answer, so an address may
    exceed it by its concurrent calls: a key has 238 random bits, so that limit is against
    floods and noise, not against a guess coming true.

    :param prefix: the Redis key prefix, naming what fails (``gateway:webhooks:refused``)
    """

    def __init__(self, redis, prefix: str, limit: int, window_seconds: int):
        self.redis, self.prefix = redis, prefix
        self.limit, self.window_seconds = limit, window_seconds
        self._counter = WindowCounter(redis)

    def key(self, source: str) -> str:
        """The Redis key counting ``source``'s failures."""
        return f"{self.prefix}:{source}"

    def wait(self, source: str) -> float | None:
        """Seconds ``source`` must wait, or None if it may try now."""
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                count, left_ms = pipe.get(self.key(source)).pttl(self.key(source)).execute()
        except RedisError as exc:
            _lapses.warning(("wait",), "failure limit not applied: Redis unavailable (%s)",
                            type(exc).__name__)
            return None
        if count is None or int(count) < self.limit:
            return None
        return max(left_ms, 1) / 1000

    def failed(self, source: str) -> None:
        """Count one failure of ``source``."""
        try:
            self._counter.add(self.key(source), self.window_seconds)
        except RedisError as exc:
            _lapses.warning(("failed",), "failure not counted: Redis unavailable (%s)",
                            type(exc).__name__)


def source_of(address: str | None) -> str:
    """A caller's address as a rate-limit key: IPv4 as it is, IPv6 by its /64 (one host is
    usually given a whole /64), ``unknown`` when there is none (a unix socket)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        return str(mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
