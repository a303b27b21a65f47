"""The regency's own fleet (the Gancang Aron health staff) as a courier like any other.

Bookings go to a dispatch list in the database; staff of an agency with the
``fleet_dispatch`` role accept, pick up and deliver through ``/api/v1/fleet/jobs`` (the
console gets a page for it later). Each step becomes a provider report, so requests move
exactly as they do with GO-SEND. It is the fallback that always exists (created even without
a ``couriers.yaml`` entry) and, by declaring ``cold_chain``, the only courier that takes
cold-chain medicine unless another declares it too.

The shuttle (``shuttle_fleet``) is the same dispatch list worked by the same staff, so it
lives here as a second adapter type of the own fleet. Neither has a simulator: the fleet is
ours, and its sandbox entries are dispatch lists of their own.
"""

from __future__ import annotations

from sqlalchemy import select

from ...hookspecs import hookimpl
from ...models import FleetJob, utcnow
from .. import Booking, CourierAdapter, CourierRejected
from .mapping import STATUS_MAP, fleet_event, sealed_order


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
