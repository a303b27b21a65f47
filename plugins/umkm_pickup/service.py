"""The UMKM pickup service: a parcel from a business to one or several drop-offs."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from gateway import Service
from gateway.fields import (
    IndonesianPhone,
    LocationSchema,
    ServiceAreaSchema,
    inside,
    notice_language,
)
from gateway.orders import Contact, DeliveryOrder, Package, Place


class BusinessSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    nib = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^\d{13}$", error="Must be the 13-digit NIB business number."))
    contact_name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    phone = IndonesianPhone(required=True, mobile=True)   # the pickup contact the courier calls
    address = fields.String(required=True, validate=validate.Length(min=5, max=300))
    location = fields.Nested(LocationSchema, required=True)


class DropoffSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    phone = IndonesianPhone(required=True, mobile=True)   # the courier calls them
    address = fields.String(required=True, validate=validate.Length(min=5, max=300))
    location = fields.Nested(LocationSchema, required=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class ParcelSchema(Schema):
    class Meta:
        unknown = RAISE

    description = fields.String(required=True, validate=validate.Length(min=1, max=120),
                                metadata={"label": {"id": "Isi paket", "en": "Contents"}})
    weight_grams = fields.Integer(required=True, strict=True,
                                  validate=validate.Range(min=1, max=200_000),
                                  metadata={"label": {"id": "Berat (gram)",
                                                      "en": "Weight (grams)"}})
    length_cm = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    width_cm = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    height_cm = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    declared_value = fields.Integer(strict=True, load_default=None,
                                    validate=validate.Range(min=0),
                                    metadata={"description": "Rupiah."})


class UmkmPickupRequestSchema(Schema):
    """A parcel pickup for a small business."""

    class Meta:
        unknown = RAISE

    order_id = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"),
        metadata={"description": "The business's own order number.",
                  "label": {"id": "Nomor pesanan", "en": "Order number"}})
    business = fields.Nested(BusinessSchema, required=True,
                             metadata={"label": {"id": "Usaha (tempat jemput)",
                                                 "en": "Business (pickup)"}})
    parcel = fields.Nested(ParcelSchema, required=True,
                           metadata={"label": {"id": "Paket", "en": "Parcel"}})
    dropoffs = fields.List(fields.Nested(DropoffSchema), required=True,
                           validate=validate.Length(min=1, max=10),
                           metadata={"label": {"id": "Tujuan antar", "en": "Drop-offs"}})
    cash_on_delivery = fields.Integer(strict=True, load_default=None, allow_none=True,
                                      validate=validate.Range(min=1),
                                      metadata={"description": "Rupiah to collect.",
                                                "label": {"id": "Bayar di tempat (Rp)",
                                                          "en": "Cash on delivery (Rp)"},
                                                "help": {"id": "Kosong: tidak ada.",
                                                         "en": "Empty: none."}})
    language = notice_language()


class UmkmPickupConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    service_area = fields.Nested(ServiceAreaSchema, load_default=None, allow_none=True)


class UmkmPickupService(Service):
    name = "umkm_pickup"
    title = "UMKM parcel pickup"
    titles = {"id": "Penjemputan paket UMKM"}
    description = ("A registered small business asks for a parcel to be picked up and "
                   "delivered to a buyer or a collection point.")
    version = "0.1.0"
    order_kind = "delivery"
    request_schema = UmkmPickupRequestSchema
    config_schema = UmkmPickupConfigSchema
    example_request = {
        "order_id": "BWM-2026-0042",
        "business": {"name": "Kopi Lego Osing", "contact_name": "Pak Slamet",
                     "phone": "081234567891", "address": "Jl. Kemiren No. 12, Glagah",
                     "location": {"lat": -8.2163, "lng": 114.3167}},
        "parcel": {"description": "Kopi bubuk 1 kg", "weight_grams": 1200,
                   "declared_value": 150000},
        "dropoffs": [{"name": "Dewi Lestari", "phone": "+6285234567890",
                      "address": "Jl. Ahmad Yani No. 80, Banyuwangi",
                      "location": {"lat": -8.2190, "lng": 114.3690}}],
    }

    def validate(self, payload, config):
        data = self.load_request(payload)
        area = config.get("service_area")
        errors: dict = {}
        if not inside(area, data["business"]["location"]):
            errors["business"] = {"location": ["Outside the service area."]}
        for index, dropoff in enumerate(data["dropoffs"]):
            if not inside(area, dropoff["location"]):
                errors.setdefault("dropoffs", {})[index] = {
                    "location": ["Outside the service area."]}
        if errors:
            raise ValidationError(errors)
        return data

    def reference(self, data):
        return data["order_id"]

    def build_order(self, data, config, reference):
        business, parcel = data["business"], data["parcel"]
        requirements = set()
        if data.get("cash_on_delivery"):
            requirements.add("cash_on_delivery")
        if len(data["dropoffs"]) > 1:
            requirements.add("multi_drop")
        return DeliveryOrder(
            reference=reference,
            pickup=Place(address=business["address"], lat=business["location"]["lat"],
                         lng=business["location"]["lng"],
                         contact=Contact(name=business["contact_name"],
                                         phone=business["phone"])),
            dropoffs=tuple(Place(address=d["address"], lat=d["location"]["lat"],
                                 lng=d["location"]["lng"],
                                 contact=Contact(name=d["name"], phone=d["phone"]),
                                 note=d.get("note")) for d in data["dropoffs"]),
            package=Package(description=parcel["description"],
                            weight_grams=parcel["weight_grams"], length_cm=parcel["length_cm"],
                            width_cm=parcel["width_cm"], height_cm=parcel["height_cm"],
                            declared_value=parcel["declared_value"]),
            cash_on_delivery=data.get("cash_on_delivery"),
            requirements=frozenset(requirements),
        )
