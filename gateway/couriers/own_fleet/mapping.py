"""The own fleet's statuses and what its staff see: pure functions, no I/O.

A fleet job's ``state`` is the raw status (``new``, ``accepted``, ``picked_up``,
``delivered``, ``cancelled``); ``NEXT_STATES`` says which staff action moves it on (the fleet
API in ``gateway/fleet.py`` follows it). What staff see of an order is sealed in the job, and
is the same minimised order a commercial courier gets.
"""

from __future__ import annotations

from ...models import FleetJob
from ...orders import DeliveryOrder
from ...statuses import Status
from .. import ProviderEvent

STATUS_MAP = {
    "new": Status.BOOKED,
    "accepted": Status.DRIVER_ASSIGNED,
    "picked_up": Status.PICKED_UP,
    "delivered": Status.DELIVERED,
    "cancelled": Status.CANCELLED,
}
#: which step may follow which, for the staff API
NEXT_STATES = {"accept": ("new", "accepted"), "pickup": ("accepted", "picked_up"),
               "deliver": ("picked_up", "delivered")}


def sealed_order(order) -> dict:
    """What staff see: the same minimised order a commercial courier gets."""
    def place(p):
        return {"address": p.address, "lat": p.lat, "lng": p.lng, "name": p.contact.name,
                "phone": p.contact.phone, "note": p.note}

    if isinstance(order, DeliveryOrder):
        return {"kind": "delivery", "pickup": place(order.pickup),
                "dropoffs": [place(d) for d in order.dropoffs],
                "package": order.package.description, "cold_chain": order.cold_chain,
                "cash_on_delivery": order.cash_on_delivery}
    return {"kind": "ride", "pickup": place(order.pickup), "dropoff": place(order.dropoff),
            "passengers": order.passengers,
            "scheduled_at": order.scheduled_at.isoformat() if order.scheduled_at else None}


def fleet_event(job: FleetJob, proof: dict | None = None) -> ProviderEvent:
    """A job's current state as a provider report, deduplicated by job and state."""
    return ProviderEvent(event_key=f"fleet:{job.id}:{job.state}", provider_reference=job.id,
                         our_reference=job.reference, raw_status=job.state,
                         status=STATUS_MAP.get(job.state),
                         details={"proof": proof} if proof else {})
