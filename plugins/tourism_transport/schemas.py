"""What a visitor (or the tourism office on their behalf) sends, and how the service is set.

Only what a ride needs is collected: the lead visitor's name and phone, never a NIK.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from gateway.fields import IndonesianPhone, PlaceSchema, notice_language, place_registry

REFERENCE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
                            error="Use 1 to 64 letters, digits, '.', '_', '/' or '-'.")


class VisitorSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120),
                         metadata={"label": {"id": "Nama", "en": "Name"}})
    # the driver calls the visitor
    phone = IndonesianPhone(required=True, mobile=True,
                            metadata={"label": {"id": "Nomor HP", "en": "Mobile number"}})


class TourismTransportRequestSchema(Schema):
    """Transport for a visitor or a tour group between configured places."""

    class Meta:
        unknown = RAISE

    booking_id = fields.String(required=True, validate=REFERENCE, metadata={
        "description": "The tourism office's own booking number.",
        "label": {"id": "Nomor pemesanan", "en": "Booking number"}})
    visitor = fields.Nested(VisitorSchema, required=True, metadata={
        "description": "The lead visitor: name and phone only.",
        "label": {"id": "Wisatawan", "en": "Visitor"}})
    pickup_point_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                    metadata={"label": {"id": "Titik jemput",
                                                        "en": "Pickup point"},
                                              "choices_from": "pickup_points"})
    destination_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                   metadata={"label": {"id": "Tujuan", "en": "Destination"},
                                             "choices_from": "destinations"})
    passengers = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=60),
                                metadata={"description": "Parties from `group_min_passengers` "
                                                         "go on the regency's shuttle.",
                                          "label": {"id": "Jumlah penumpang",
                                                    "en": "Passengers"}})
    group_name = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(max=120),
                               metadata={"label": {"id": "Nama rombongan", "en": "Group name"}})
    language = notice_language()
    departure_at = fields.AwareDateTime(load_default=None, allow_none=True, metadata={
        "description": "ISO 8601 with a zone; empty for now; at most 30 days ahead. Groups: "
                       "one of the shuttle's departures.",
        "label": {"id": "Waktu berangkat", "en": "Departure"},
        "help": {"id": "Kosong: sekarang. Paling lama 30 hari ke depan; rombongan: salah satu "
                       "jadwal shuttle.",
                 "en": "Empty: now. At most 30 days ahead; groups: one of the shuttle's "
                       "departures."}})


class DepartureSchema(Schema):
    """Shuttle departures on one route: daily times (local) and seats per departure."""

    class Meta:
        unknown = RAISE

    pickup_point_id = fields.String(required=True)
    destination_id = fields.String(required=True)
    times = fields.List(fields.String(validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$")),
                        required=True, validate=validate.Length(min=1))
    capacity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class TourismTransportConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    pickup_points = fields.List(fields.Nested(PlaceSchema), load_default=list)
    destinations = fields.List(fields.Nested(PlaceSchema), load_default=list)
    group_min_passengers = fields.Integer(strict=True, load_default=5,
                                          validate=validate.Range(min=2))
    utc_offset_hours = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(
            min=-12, max=14), metadata={
            "description": "Older setting: a fixed offset from UTC for the departure times. "
                           "Leave it out: the times are read in the region's time zone "
                           "(gateway.yaml, region.time_zone)."})
    shuttle_departures = fields.List(fields.Nested(DepartureSchema), load_default=list)

    @validates_schema
    def _consistent(self, data, **kwargs):
        points = place_registry(data.get("pickup_points", []), "pickup_points")
        destinations = place_registry(data.get("destinations", []), "destinations")
        for index, departure in enumerate(data.get("shuttle_departures", [])):
            if departure["pickup_point_id"] not in points:
                raise ValidationError({"shuttle_departures": {index: {
                    "pickup_point_id": ["Not one of pickup_points."]}}})
            if departure["destination_id"] not in destinations:
                raise ValidationError({"shuttle_departures": {index: {
                    "destination_id": ["Not one of destinations."]}}})
