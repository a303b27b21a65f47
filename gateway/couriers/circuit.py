"""A circuit breaker per courier instance, shared by every worker through Redis.

After ``failure_threshold`` failed calls (timeouts, 5xx, 429, unknown outcomes) within
``window_seconds``, or one credential refusal, the circuit opens: routing skips that courier
for ``cooldown_seconds``. Then it is half-open: calls go through again, one success closes it,
one failure opens it again at once. "No driver" and "rejected" are answers, not failures, and
do not count. Only a successful booking closes the circuit: a provider whose lookups answer
while its bookings fail is still down for us (a failed create is followed by a lookup by our
reference, and that lookup's success must not reset the count, or the circuit never opens).
A failure is counted, and its window set, in one atomic step (``gateway.ratelimit``'s
:class:`WindowCounter`): no crash can leave a count that never expires. If Redis itself is
unreachable the breaker says "closed": it must never be the reason a request is not
dispatched.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from ..ratelimit import WindowCounter
from . import CallOutcome

log = logging.getLogger(__name__)

#: operations whose success shows the provider works again
CLOSING_OPERATIONS = {"book"}
PREFIX = "gateway:circuit"


class CircuitBreaker:
    def __init__(self, redis, settings: dict[str, dict],
                 closing_operations: frozenset[str] | set[str] = CLOSING_OPERATIONS):
        """:param settings: per courier instance (or other named endpoint: the callback
            hosts of ``gateway.callbacks``), its ``circuit`` settings
        :param closing_operations: operations whose success closes the circuit"""
        self.redis = redis
        self.settings = settings
        self.closing_operations = closing_operations
        self._failures = WindowCounter(redis)

    def _keys(self, courier: str) -> tuple[str, str, str]:
        return (f"{PREFIX}:{courier}:failures", f"{PREFIX}:{courier}:open",
                f"{PREFIX}:{courier}:tripped")

    def record(self, outcome: CallOutcome) -> None:
        if outcome.operation == "health":
            return
        failures, open_key, tripped = self._keys(outcome.courier)
        rules = self.settings.get(outcome.courier, {})
        try:
            if not outcome.failed:
                if outcome.outcome == "ok" and outcome.operation in self.closing_operations:
                    self.redis.delete(failures, tripped)
                return
            count = self._failures.add(failures, rules.get("window_seconds", 60))
            half_open = self.redis.exists(tripped) and not self.redis.exists(open_key)
            if outcome.opens_circuit or half_open \
                    or count >= rules.get("failure_threshold", 5):
                cooldown = rules.get("cooldown_seconds", 30)
                self.redis.set(open_key, "1", ex=cooldown)
                self.redis.set(tripped, "1", ex=cooldown + rules.get("window_seconds", 60))
                log.warning("circuit opened for courier %s for %ss after %s", outcome.courier,
                            cooldown, outcome.outcome)
        except RedisError:
            log.warning("circuit breaker could not record an outcome: Redis unavailable")

    def state(self, courier: str) -> str:
        _failures, open_key, tripped = self._keys(courier)
        try:
            if self.redis.exists(open_key):
                return "open"
            return "half_open" if self.redis.exists(tripped) else "closed"
        except RedisError:
            return "closed"

    def is_open(self, courier: str) -> bool:
        return self.state(courier) == "open"

    def seconds_until_half_open(self, courier: str) -> float:
        """How long an open circuit stays open (0 when it is not open, or Redis is away)."""
        _failures, open_key, _tripped = self._keys(courier)
        try:
            return max(self.redis.pttl(open_key), 0) / 1000
        except RedisError:
            return 0.0
