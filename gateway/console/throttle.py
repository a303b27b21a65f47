"""Sign-in throttling: failed attempts counted in Redis per username and per address.

After ``MAX_FAILURES`` failures within ``WINDOW_SECONDS`` further attempts are refused
(429) until the window has passed, even with the right password, so guessing is slow and a
locked account tells the guesser nothing.
"""

from __future__ import annotations

MAX_FAILURES = 5
WINDOW_SECONDS = 300
_KEY = "gateway:console:signin-failures:{}"


def _keys(username: str, address: str) -> list[str]:
    return [_KEY.format(f"user:{username.lower()}"), _KEY.format(f"addr:{address}")]


def wait_seconds(redis, username: str, address: str) -> int | None:
    """Seconds to wait before another attempt, or None if one may be made now."""
    waits = []
    for key in _keys(username, address):
        count = redis.get(key)
        if count is not None and int(count) >= MAX_FAILURES:
            waits.append(max(int(redis.ttl(key)), 1))
    return max(waits) if waits else None


def record_failure(redis, username: str, address: str) -> None:
    pipe = redis.pipeline()
    for key in _keys(username, address):
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)   # the window starts at the first failure
        pipe.incr(key)
    pipe.execute()


def clear(redis, username: str) -> None:
    redis.delete(_keys(username, "")[0])
