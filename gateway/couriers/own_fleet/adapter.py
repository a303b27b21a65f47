"""The regency's own fleet (the Gancang Aron health staff) as a courier like any other.

Bookings go to a dispatch list in the database; staff of an agency with the
``fleet_dispatch`` role accept, pick up and deliver through ``/api/v1/fleet/jobs`` (the
console gets a page for it later). Each step becomes a provider report, so requests move
exactly as they do with GO-SEND. It is the fallback that always exists (created even without
a ``couriers.yaml`` entry) and, by declaring ``cold_chain``, the only courier that takes
cold-chain medicine unless another declares it too.
"""

from __future__ import annotations

from sqlalchemy import select

from ..hookspecs import hookimpl
from ..models import FleetJob, utcnow
from ..orders import DeliveryOrder
from ..statuses import Status
from . import Booking, CourierAdapter, CourierRejected, ProviderEvent

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
    return ProviderEvent(event_key=f"fleet:{job.id}:{job.state}", provider_reference=job.id,
                         our_reference=job.reference, raw_status=job.state,
                         status=STATUS_MAP.get(job.state),
                         details={"proof": proof} if proof else {})


class OwnFleetCourier(CourierAdapter):
    name = "own_fleet"
    supports = frozenset({"delivery", "cold_chain", "cash_on_delivery", "multi_drop"})
    default_instance = True
    status_map = STATUS_MAP

    def _book(self, order, reference):
        with self.gateway.db.write() as session:
            job = FleetJob(courier=self.instance, reference=reference, state="new",
                           order_ciphertext=self.gateway.vault.seal(sealed_order(order)))
            session.add(job)
            session.flush()
            return Booking(provider=self.instance, provider_reference=job.id, raw_status="new")

    def _find_by_reference(self, reference):
        with self.gateway.db.read() as session:
            job = session.scalars(select(FleetJob).where(FleetJob.reference == reference)).first()
            if job is None:
                return None
            return Booking(provider=self.instance, provider_reference=job.id,
                           raw_status=job.state)

    def _get_status(self, provider_reference):
        with self.gateway.db.read() as session:
            job = session.get(FleetJob, provider_reference)
            if job is None:
                raise CourierRejected("no such fleet job")
            return fleet_event(job)

    def _cancel(self, provider_reference):
        with self.gateway.db.write() as session:
            job = session.get(FleetJob, provider_reference)
            if job is None:
                raise CourierRejected("no such fleet job")
            if job.state in ("delivered", "cancelled"):
                raise CourierRejected(f"the job is already {job.state}")
            job.state, job.updated_at = "cancelled", utcnow()


class ShuttleFleetCourier(OwnFleetCourier):
    """The regency's tourist shuttles: group rides on scheduled departures, run by staff
    through the same dispatch list (accept = vehicle assigned, pickup = boarded, deliver =
    arrived). Seats are counted by the service at intake, not here."""

    name = "shuttle_fleet"
    supports = frozenset({"ride", "shuttle"})
    default_instance = False

    def refusal(self, order):
        if "shuttle" not in order.requirements:
            return "runs only scheduled group departures"
        return super().refusal(order)


@hookimpl
def register_couriers():
    return [OwnFleetCourier, ShuttleFleetCourier]
