"""The dukcapil_delivery service: the office's rules, and the courier order.

Recipient verification works without handing the courier anything to verify against: the
order names the recipient, and its note tells the courier to hand the envelope over only to
that person, after seeing an identity document with that name and hearing the six-digit
delivery PIN that the gateway gives the office for the citizen (``delivery_pin``). The own
fleet's app checks the PIN; the NIK and the PIN are in no order, so no courier ever holds
them.
"""

from __future__ import annotations

from gateway import Service
from gateway.fields import inside, place_registry
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.services import RequestRefused
from marshmallow import ValidationError

from .schemas import DukcapilDeliveryConfigSchema, DukcapilDeliveryRequestSchema

EXAMPLE = {
    "application_number": "DKB-2026-000123",
    "office_id": "disdukcapil-banyuwangi",
    "document": "ktp_el",
    "citizen": {
        "name": "Siti Aminah",
        "nik": "3510015203900002",
        "phone": "+6281234567890",
        "address": "Jl. Letjen S. Parman No. 5, Sobo, Banyuwangi",
        "location": {"lat": -8.2192, "lng": 114.3691},
    },
    "notes_for_courier": "Rumah pagar hijau",
}


def package_label(application_number: str) -> str:
    """``DKB-2026-000123`` -> ``Dokumen Dukcapil (segel) …0123``: enough to match the
    envelope at the counter; not which document, nor whose."""
    return f"Dokumen Dukcapil (segel) …{application_number[-4:]}"


def handover_note(recipient_name: str, notes: str | None) -> str:
    """What the courier must do at the door (in Indonesian, for the driver)."""
    note = (f"Serahkan hanya kepada {recipient_name}: cocokkan nama dengan kartu identitasnya "
            "dan minta PIN pengiriman 6 digit. Jangan dititipkan.")
    return f"{note} {notes}" if notes else note


class DukcapilDeliveryService(Service):
    name = "dukcapil_delivery"
    title = "Civil-registry document delivery (Dukcapil)"
    description = ("The population office (Disdukcapil) sends a citizen's new KTP-el or family "
                   "card (KK) to their home. The courier hands it over only to the citizen, or "
                   "for a KK a family member named in the request, after checking an identity "
                   "document and the delivery PIN; the NIK never reaches the courier.")
    version = "0.1.0"
    order_kind = "delivery"
    request_schema = DukcapilDeliveryRequestSchema
    config_schema = DukcapilDeliveryConfigSchema
    example_request = EXAMPLE
    #: one active delivery per application: a retried submission cannot send two couriers
    unique_reference_field = "application_number"
    #: the answer carries a PIN for the office to give the citizen (SMS, the receipt)
    delivery_pin = True

    def validate(self, payload, config):
        data = self.load_request(payload)
        errors: dict = {}
        if data["office_id"] not in place_registry(config["offices"], "offices"):
            errors["office_id"] = ["Unknown office."]
        if data["document"] not in config["documents"]:
            errors["document"] = ["This document is not delivered here."]
        if not inside(config.get("service_area"), data["citizen"]["location"]):
            errors["citizen"] = {"location": ["Outside the service area."]}
        if errors:
            raise ValidationError(errors)
        if not data["citizen"]["nik"].startswith(config["regency_code"]):
            raise RequestRefused("not_a_resident", "Only documents of the regency's residents "
                                 "are delivered; others collect theirs at the office.",
                                 {"citizen.nik": ["Not registered in this regency."]})
        if data["recipient"] and data["document"] == "ktp_el":
            raise RequestRefused("recipient_must_be_owner", "A KTP-el is handed to its owner "
                                 "only.", {"recipient": ["Leave it out for a KTP-el."]})
        return data

    def reference(self, data):
        return data["application_number"]

    def build_order(self, data, config, reference):
        office = place_registry(config["offices"], "offices")[data["office_id"]]
        citizen = data["citizen"]
        recipient = data.get("recipient") or citizen
        return DeliveryOrder(
            reference=reference,
            pickup=Place(address=office["address"], lat=office["location"]["lat"],
                         lng=office["location"]["lng"],
                         contact=Contact(name=office.get("contact_name") or office["name"],
                                         phone=office.get("phone") or "")),
            dropoffs=(Place(address=citizen["address"], lat=citizen["location"]["lat"],
                            lng=citizen["location"]["lng"],
                            contact=Contact(name=recipient["name"], phone=recipient["phone"]),
                            note=handover_note(recipient["name"],
                                               data.get("notes_for_courier"))),),
            package=Package(description=package_label(data["application_number"]),
                            weight_grams=100),
        )
