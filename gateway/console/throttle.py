"""Sign-in throttling: attempts counted in Redis per (username, client address) and per address.

Counted per pair, an attacker's guesses slow down the attacker only: the person whose account
is guessed at still signs in from her own address. After ``MAX_FAILURES`` failed attempts of a
pair each further one must wait, twice as long as the one before (``BASE_DELAY_SECONDS``,
then double, up to ``MAX_DELAY_SECONDS``); while waiting, even the right password is refused
(429), so a wait tells the guesser nothing. An address that fails ``ADDRESS_MAX_FAILURES``
times across any usernames waits the same way, so spraying many usernames is slowed too.

Every attempt is counted *before* its password is checked, in one Lua script that also
decides whether it may be made: parallel guesses cannot all pass a check that none of them
has counted yet. A successful sign-in takes its own attempt back from the address and clears
the pair. The client address is ``request.remote_addr``: behind a reverse proxy, set
``trusted_proxies`` so that it is the client's and not the proxy's.
"""

from __future__ import annotations

import hashlib
import time

MAX_FAILURES = 5
ADDRESS_MAX_FAILURES = 30
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600
#: counts are forgotten this long after the last attempt
WINDOW_SECONDS = 24 * 3600
_PREFIX = "gateway:console:signin:"

# KEYS: pair, address. ARGV: now_ms, pair limit, address limit, base_ms, max_ms, window_s.
# Each key is a hash {n: attempts counted, until: ms before which no attempt may be made}.
# Returns 0 when the attempt may be made (and has been counted), else the ms to wait.
ATTEMPT_SCRIPT = """
local now = tonumber(ARGV[1])
local wait = 0
for i = 1, 2 do
  local until_ms = tonumber(redis.call('HGET', KEYS[i], 'until') or '0')
  if until_ms > now then wait = math.max(wait, until_ms - now) end
end
if wait > 0 then return wait end
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
for i = 1, 2 do
  local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
  if n >= limits[i] then
    local delay = math.min(tonumber(ARGV[4]) * 2 ^ (n - limits[i]), tonumber(ARGV[5]))
    redis.call('HSET', KEYS[i], 'until', now + delay)
  end
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6]))
end
return 0
"""


def _keys(username: str, address: str) -> list[str]:
    pair = hashlib.sha256(f"{username.lower()}\0{address}".encode()).hexdigest()
    return [f"{_PREFIX}pair:{pair}", f"{_PREFIX}addr:{address}"]


def begin_attempt(redis, username: str, address: str) -> int | None:
    """Count one sign-in attempt before its password is checked.

    :return: None when it may go on to the password check, else whole seconds to wait
    """
    wait_ms = redis.eval(ATTEMPT_SCRIPT, 2, *_keys(username, address),
                         int(time.time() * 1000), MAX_FAILURES, ADDRESS_MAX_FAILURES,
                         BASE_DELAY_SECONDS * 1000, MAX_DELAY_SECONDS * 1000, WINDOW_SECONDS)
    return max(1, -(-int(wait_ms) // 1000)) if wait_ms else None


def succeeded(redis, username: str, address: str) -> None:
    """The pair starts afresh; the address's count gives back this attempt (not its waits)."""
    pair, addr = _keys(username, address)
    pipe = redis.pipeline()
    pipe.delete(pair)
    pipe.hincrby(addr, "n", -1)
    pipe.expire(addr, WINDOW_SECONDS)
    pipe.execute()
