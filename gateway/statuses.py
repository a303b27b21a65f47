"""The one lifecycle every request follows, whatever the service and the courier.

Statuses are ranked; an update applies only if it moves the request forward, so a late or
duplicated provider event is recorded on the timeline and changes nothing. Terminal statuses
absorb: nothing moves a request out of ``delivered``, ``cancelled`` or ``failed``.

::

    received -> dispatching -> booked -> driver_assigned -> picked_up -> delivered
         \\            \\           \\             \\               \\-> returned
          \\------------\\-----------\\-------------\\-> cancelled | failed | no_driver
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"
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
