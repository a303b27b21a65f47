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

import itertools
import math

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from ... import geo
from ...hookspecs import hookimpl
from ...models import FleetJob, utcnow
from .. import Booking, CourierAdapter, CourierRejected, Quote
from .mapping import STATUS_MAP, fleet_event, sealed_order


class TariffSchema(Schema):
    """What one trip of the own fleet costs the office (fuel, allowance), in whole units of
    the region's currency: ``base`` + ``per_km`` a started km of straight-line distance (+
    ``per_passenger`` for rides); the estimate is ``pickup_minutes`` + the distance at
    ``speed_kmh``."""

    class Meta:
        unknown = RAISE

    base = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    per_km = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    per_passenger = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))
    pickup_minutes = fields.Integer(strict=True, load_default=20,
                                    validate=validate.Range(min=0, max=24 * 60))
    speed_kmh = fields.Integer(strict=True, load_default=25, validate=validate.Range(min=1))


class OwnFleetConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    tariff = fields.Nested(TariffSchema, load_default=None, allow_none=True, metadata={
        "description": "The fleet's tariff for quotes (gateway.costs); none: no quote."})
    currency = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(equal=3), metadata={
        "description": "The tariff's currency; default: the region's."})


def tariff_quote(instance: str, order, tariff: dict, currency: str) -> Quote:
    """The own fleet's quote for ``order`` under ``tariff`` (pure): every leg's straight-line
    distance (``gateway.geo``), priced per started km."""
    stops = [order.pickup, *getattr(order, "dropoffs", ())] if hasattr(order, "dropoffs") \
        else [order.pickup, order.dropoff]
    km = sum(geo.distance_km(a.lat, a.lng, b.lat, b.lng) for a, b in itertools.pairwise(stops))
    price = tariff["base"] + tariff["per_km"] * math.ceil(km) \
        + tariff["per_passenger"] * (getattr(order, "passengers", 0) or 0)
    minutes = tariff["pickup_minutes"] + math.ceil(km * 60 / tariff["speed_kmh"])
    return Quote(courier=instance, price=price, currency=currency, distance_km=round(km, 3),
                 duration_minutes=minutes)


class OwnFleetCourier(CourierAdapter):
    name = "own_fleet"
    supports = frozenset({"delivery", "cold_chain", "cash_on_delivery", "multi_drop"})
    default_instance = True
    status_map = STATUS_MAP
    config_schema = OwnFleetConfigSchema

    def gives_quotes(self) -> bool:
        return bool(self.config.get("tariff"))

    def _quote(self, order):
        tariff = self.config.get("tariff")
        if not tariff:
            raise CourierRejected(f"{self.instance} has no tariff configured")
        currency = self.config.get("currency") or (
            self.gateway.region.currency if self.gateway is not None else "IDR")
        return tariff_quote(self.instance, order, tariff, currency)

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
