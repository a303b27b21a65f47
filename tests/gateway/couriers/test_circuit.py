"""The circuit breaker's failure count, against a real Redis: it always expires.

A failure is counted and given its window in one atomic step. Counted the old way (``INCR``,
then ``EXPIRE`` when the count is 1), a worker killed or a connection lost between the two
left a count that never expired: every later failure added to it, and one failure a month
was enough, some day, to open the circuit of a healthy courier for good.
"""

from __future__ import annotations

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.couriers import CallOutcome
from gateway.couriers.circuit import CircuitBreaker

RULES = {"failure_threshold": 3, "window_seconds": 60, "cooldown_seconds": 30}


class CutAfter(Redis):
    """A connection that is cut after ``allowed`` commands: the worker killed, or the
    network lost, in the middle of recording an outcome. (Only the failure cannot be made
    to happen at an exact command otherwise; the commands that do pass reach a real Redis.)
    """

    allowed = 0

    def execute_command(self, *args, **options):
        if self.allowed <= 0:
            raise RedisConnectionError("connection cut (test)")
        self.allowed -= 1
        return super().execute_command(*args, **options)


def cut_after(url: str, allowed: int) -> CutAfter:
    connection = CutAfter.from_url(url)
    connection.allowed = allowed
    return connection


def failure(courier: str) -> CallOutcome:
    return CallOutcome(courier=courier, operation="book", outcome="temporary", seconds=0.1,
                       failed=True)


def failures_key(courier: str) -> str:
    return f"gateway:circuit:{courier}:failures"


def test_the_first_failure_is_counted_with_its_window_already_set(gateway_redis):
    breaker = CircuitBreaker(gateway_redis, {"gosend": RULES})
    breaker.record(failure("gosend"))
    assert int(gateway_redis.get(failures_key("gosend"))) == 1
    assert 0 < gateway_redis.ttl(failures_key("gosend")) <= 60


def test_counting_a_failure_is_one_command(gateway_redis_url, gateway_redis):
    """Cut right after the first command: the count is there, and it expires."""
    CircuitBreaker(gateway_redis, {"warm": RULES}).record(failure("warm"))  # the script is known
    CircuitBreaker(cut_after(gateway_redis_url, 1), {"gosend": RULES}).record(failure("gosend"))
    assert gateway_redis.get(failures_key("gosend")) == b"1"
    assert 0 < gateway_redis.ttl(failures_key("gosend")) <= 60


@pytest.mark.parametrize("allowed", range(0, 6))
def test_no_cut_anywhere_leaves_a_count_that_never_expires(
        gateway_redis_url, gateway_redis, allowed):
    """Wherever the connection is cut while a failure (or a second, or a third that opens
    the circuit) is recorded, every key the breaker left behind expires."""
    CircuitBreaker(gateway_redis, {"warm": RULES}).record(failure("warm"))  # the script is known
    for _ in range(3):
        CircuitBreaker(cut_after(gateway_redis_url, allowed), {"gosend": RULES}).record(
            failure("gosend"))
    for key in gateway_redis.scan_iter("gateway:circuit:gosend:*"):
        assert gateway_redis.ttl(key) > 0, f"{key!r} never expires"


def test_a_count_left_without_expiry_is_given_one_by_the_next_failure(gateway_redis):
    """A count an older version left behind heals instead of adding up for ever."""
    gateway_redis.set(failures_key("gosend"), 1)
    CircuitBreaker(gateway_redis, {"gosend": RULES}).record(failure("gosend"))
    assert int(gateway_redis.get(failures_key("gosend"))) == 2
    assert 0 < gateway_redis.ttl(failures_key("gosend")) <= 60
