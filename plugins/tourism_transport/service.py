"""The tourism transport service: a ride from a pickup point to a destination.

Only what a ride needs is collected: the lead visitor's name and phone, not a NIK.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from gateway import Service
from gateway.fields import IndonesianPhone, PlaceSchema, place_registry
from gateway.orders import Contact, Place, RideOrder

BOOKING_HORIZON = timedelta(days=30)


class VisitorSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    phone = IndonesianPhone(required=True)


class TourismTransportRequestSchema(Schema):
    """A ride for a visitor or a small party."""

    class Meta:
        unknown = RAISE

    booking_id = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"))
    visitor = fields.Nested(VisitorSchema, required=True)
    pickup_point_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    destination_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    passengers = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=60))
    departure_at = fields.AwareDateTime(load_default=None, allow_none=True, metadata={
        "description": "ISO 8601 with a zone; empty for now; at most 30 days ahead."})


class TourismTransportConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    pickup_points = fields.List(fields.Nested(PlaceSchema), load_default=list)
    destinations = fields.List(fields.Nested(PlaceSchema), load_default=list)

    @validates_schema
    def _unique_ids(self, data, **kwargs):
        place_registry(data.get("pickup_points", []), "pickup_points")
        place_registry(data.get("destinations", []), "destinations")


class TourismTransportService(Service):
    name = "tourism_transport"
    title = "Tourist transport"
    description = ("A visitor or tour group books transport between a pickup point (terminal, "
                   "airport, hotel, Taman Sritanjung) and a destination (Ijen, Pulau Merah...).")
    version = "0.1.0"
    order_kind = "ride"
    request_schema = TourismTransportRequestSchema
    config_schema = TourismTransportConfigSchema
    example_request = {
        "booking_id": "TRIP-2026-0007",
        "visitor": {"name": "Anna Schmidt", "phone": "+6281398765432"},
        "pickup_point_id": "taman-sritanjung",
        "destination_id": "pulau-merah",
        "passengers": 2,
    }

    def validate(self, payload, config):
        data = self.request_schema().load(payload)
        errors: dict = {}
        if data["pickup_point_id"] not in place_registry(config.get("pickup_points", []), "-"):
            errors["pickup_point_id"] = ["Unknown pickup point."]
        if data["destination_id"] not in place_registry(config.get("destinations", []), "-"):
            errors["destination_id"] = ["Unknown destination."]
        departure = data.get("departure_at")
        now = datetime.now(UTC)
        if departure is not None and not now - timedelta(minutes=5) <= departure \
                <= now + BOOKING_HORIZON:
            errors["departure_at"] = ["Must be between now and 30 days ahead."]
        if errors:
            raise ValidationError(errors)
        return data

    def reference(self, data):
        return data["booking_id"]

    def build_order(self, data, config, reference):
        points = place_registry(config.get("pickup_points", []), "pickup_points")
        destinations = place_registry(config.get("destinations", []), "destinations")
        origin, target = points[data["pickup_point_id"]], destinations[data["destination_id"]]
        visitor = Contact(name=data["visitor"]["name"], phone=data["visitor"]["phone"])
        return RideOrder(
            reference=reference,
            pickup=Place(address=origin["address"], lat=origin["location"]["lat"],
                         lng=origin["location"]["lng"], contact=visitor),
            dropoff=Place(address=target["address"], lat=target["location"]["lat"],
                          lng=target["location"]["lng"], contact=visitor),
            passengers=data["passengers"],
            scheduled_at=(datetime.fromisoformat(data["departure_at"])
                          if data.get("departure_at") else None),
        )
