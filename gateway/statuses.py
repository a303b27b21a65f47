"""The one lifecycle every request follows, whatever the service and the courier.

Statuses are ranked; an update applies only if it moves the request forward, so a late or
duplicated provider event is recorded on the timeline and changes nothing. Terminal statuses
absorb: nothing moves a request out of ``delivered``, ``cancelled`` or ``failed``.

::

    received -> dispatching -> booked -> driver_assigned -> picked_up -> delivered
         \\            \\           \\             \\               \\-> returned
          \\------------\\-----------\\-------------\\-> cancelled | failed | no_driver

``held_for_budget`` sits between ``received`` and ``dispatching``: the agency's budget for the
service is used up and the service holds new requests (``on_budget_exhausted: hold``) until
someone in the console releases them (on to ``dispatching``) or refuses them (``failed``
with ``budget_exhausted``); see ``gateway.costs``.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
    HELD_FOR_BUDGET = "held_for_budget"
    DISPATCHING = "dispatching"
    OUTCOME_UNKNOWN = "outcome_unknown"
    BOOKED = "booked"
    DRIVER_ASSIGNED = "driver_assigned"
    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    RETURNED = "returned"
    NO_DRIVER = "no_driver"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return RANKS[self]

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


RANKS = {
    Status.RECEIVED: 0,
    Status.HELD_FOR_BUDGET: 5,
    Status.DISPATCHING: 10,
    Status.OUTCOME_UNKNOWN: 15,
    Status.BOOKED: 20,
    Status.DRIVER_ASSIGNED: 30,
    Status.PICKED_UP: 40,
    Status.DELIVERED: 100,
    Status.RETURNED: 100,
    Status.NO_DRIVER: 100,
    Status.CANCELLED: 100,
    Status.FAILED: 100,
}

TERMINAL = frozenset({Status.DELIVERED, Status.RETURNED, Status.NO_DRIVER, Status.CANCELLED,
                      Status.FAILED})


def moves_forward(current: Status | str, new: Status | str) -> bool:
    """True when ``new`` may replace ``current`` on a request."""
    current, new = Status(current), Status(new)
    return not current.terminal and new.rank > current.rank


class AttemptState(StrEnum):
    """How one try at one courier stands (``CourierAttempt.state``), and what it means for
    the next step. A courier error names the state it leaves
    (:attr:`gateway.couriers.CourierError.attempt_state`); dispatch reads only these
    properties, so a new state is described here, once."""

    #: written before the provider is called; no answer recorded yet
    PENDING = "pending"
    BOOKED = "booked"
    #: the answer never came (a timeout or 5xx on create): the booking may exist
    UNKNOWN = "unknown"
    #: the call did not get through (network, 429, 5xx before sending): try again later
    TEMPORARY = "temporary"
    #: the provider has no driver now: fail over
    NO_DRIVER = "no_driver"
    #: the provider will never take this order
    REJECTED = "rejected"
    #: our credentials were refused
    AUTH = "auth"
    #: an unknown outcome looked up: nothing was booked under our reference
    NOT_FOUND = "not_found"
    #: an unknown outcome cancelled at the provider with the request
    RELEASED = "released"
    #: no answer and no way to look it up: that courier is not tried again for this request
    ABANDONED = "abandoned"
    #: written, never sent (the courier's circuit opened before a batch's call)
    SKIPPED = "skipped"

    @property
    def unresolved(self) -> bool:
        """The booking may exist: look it up by our reference before anything else."""
        return self in _UNRESOLVED

    @property
    def final_for_courier(self) -> bool:
        """That courier is not tried again for the same request."""
        return self in _FINAL_FOR_COURIER

    @property
    def temporary(self) -> bool:
        """Counts towards ``dispatch.temporary_tries_per_courier`` (an unknown outcome that
        booked nothing counts like a temporary error)."""
        return self in _TEMPORARY

    @property
    def settles_later(self) -> bool:
        """Worth another go after a pause (a retry, or a look-up of what the answer was)."""
        return self in _SETTLES_LATER

    @property
    def failure_code(self) -> str | None:
        """The request's ``failure_code`` when this was how its last courier ended."""
        return _FAILURE_CODES.get(self)


_UNRESOLVED = frozenset({AttemptState.PENDING, AttemptState.UNKNOWN})
_FINAL_FOR_COURIER = frozenset({AttemptState.NO_DRIVER, AttemptState.REJECTED,
                                AttemptState.AUTH, AttemptState.RELEASED,
                                AttemptState.ABANDONED})
_TEMPORARY = frozenset({AttemptState.TEMPORARY, AttemptState.NOT_FOUND})
_SETTLES_LATER = frozenset({AttemptState.TEMPORARY, AttemptState.UNKNOWN})
_FAILURE_CODES = {AttemptState.NO_DRIVER: "no_driver", AttemptState.REJECTED: "rejected",
                  AttemptState.AUTH: "courier_unavailable",
                  AttemptState.TEMPORARY: "courier_unavailable"}
#: the states whose attempt may have booked, for queries (``state IN ...``)
UNRESOLVED_ATTEMPTS = tuple(sorted(state.value for state in _UNRESOLVED))
