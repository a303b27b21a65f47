"""The medicine delivery service: validation against the registry, and the courier order.

The order a courier gets is built here and holds only what UU PDP allows: the patient's
name, phone, address and location, and a sealed package label. No NIK, no drug names.
"""

from __future__ import annotations

from marshmallow import ValidationError

from gateway import Service
from gateway.fields import inside, place_registry
from gateway.orders import Contact, DeliveryOrder, Package, Place

from .schemas import MedicineDeliveryConfigSchema, MedicineDeliveryRequestSchema

EXAMPLE = {
    "prescription_id": "RX-2026-000123",
    "pickup_location_id": "puskesmas-sobo",
    "patient": {
        "name": "Siti Aminah",
        "phone": "+6281234567890",
        "nik": "3510011203650002",
        "address": "Jl. Letjen S. Parman No. 5, Sobo, Banyuwangi",
        "location": {"lat": -8.2192, "lng": 114.3691},
    },
    "items": [{"name": "Amlodipine 10 mg", "quantity": 30}],
    "cold_chain": False,
    "pharmacist_counselled": True,
    "notes_for_courier": "Rumah pagar hijau",
}


class MedicineDeliveryService(Service):
    name = "medicine_delivery"
    title = "Medicine delivery (Gancang Aron)"
    description = ("A puskesmas or hospital pharmacy asks for a patient's prescription to be "
                   "carried home. The courier sees a sealed package, never its contents.")
    version = "0.1.0"
    order_kind = "delivery"
    request_schema = MedicineDeliveryRequestSchema
    config_schema = MedicineDeliveryConfigSchema
    example_request = EXAMPLE

    def validate(self, payload, config):
        data = self.request_schema().load(payload)
        errors: dict = {}
        locations = place_registry(config.get("pickup_locations", []), "pickup_locations")
        if data["pickup_location_id"] not in locations:
            errors["pickup_location_id"] = ["Unknown pickup location."]
        if not inside(config.get("service_area"), data["patient"]["location"]):
            errors["patient"] = {"location": ["Outside the service area."]}
        if errors:
            raise ValidationError(errors)
        return data

    def reference(self, data):
        return data["prescription_id"]

    def build_order(self, data, config, reference):
        locations = place_registry(config.get("pickup_locations", []), "pickup_locations")
        origin = locations[data["pickup_location_id"]]
        patient = data["patient"]
        return DeliveryOrder(
            reference=reference,
            pickup=Place(address=origin["address"], lat=origin["location"]["lat"],
                         lng=origin["location"]["lng"],
                         contact=Contact(name=origin.get("contact_name") or origin["name"],
                                         phone=origin.get("phone") or "")),
            dropoffs=(Place(address=patient["address"], lat=patient["location"]["lat"],
                            lng=patient["location"]["lng"],
                            contact=Contact(name=patient["name"], phone=patient["phone"]),
                            note=data.get("notes_for_courier")),),
            package=Package(description=f"Paket obat tersegel #{reference[:8]}"),
            cold_chain=data["cold_chain"],
            requirements=frozenset({"cold_chain"}) if data["cold_chain"] else frozenset(),
        )
