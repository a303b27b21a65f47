"""The medicine delivery service: validation, health guards, the courier order, the FHIR view.

The order a courier gets is built here and holds only what UU PDP allows: the patient's
name, phone, address and location, the pickup point, the notes, and a sealed package label
with a masked prescription number. No NIK, no drug names, no quantities.

Health guards (BPOM 8/2020 Pasal 27, Gancang Aron practice): narcotics, psychotropics,
precursors and injectables other than insulin are refused unless the service's config allows
them; cold-chain items go only to couriers that declare cold-chain support; a pharmacist
must have counselled the patient before dispatch.
"""

from __future__ import annotations

from marshmallow import ValidationError

from gateway import Service
from gateway.fields import inside, place_registry
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.services import NoticeContacts, RequestRefused, View, ViewGone

from .fhir import dispense_bundle
from .satusehat import SatusehatClient
from .schemas import (
    RESTRICTED_CATEGORIES,
    MedicineDeliveryConfigSchema,
    MedicineDeliveryRequestSchema,
)

EXAMPLE = {
    "prescription_id": "RX-2026-000123",
    "pickup_location_id": "puskesmas-sobo",
    "patient": {
        "name": "Siti Aminah",
        "phone": "+6281234567890",
        "nik": "3510011203650002",
        "address": "Jl. Letjen S. Parman No. 5, Sobo, Banyuwangi",
        "location": {"lat": -8.2192, "lng": 114.3691},
        "ihs_number": "P02478375538",
    },
    "items": [{"name": "Amlodipine 10 mg", "quantity": 30, "kfa_code": "93000317",
               "unit": "TAB", "medication_request_id": "b5293e13-4a53-4b5a-9e88-0e8e9c2b2f4e"}],
    "cold_chain": False,
    "pharmacist_counselled": True,
    "notes_for_courier": "Rumah pagar hijau",
    # illustrative SATUSEHAT ids, in the shapes of SATUSEHAT's sandbox examples
    "satusehat": {"organization_id": "100011961",
                  "location_id": "b017aa54-f1df-4ec2-9d84-8823815d7228",
                  "encounter_id": "2823ed1d-3e3e-434e-9a5b-9c579d192363",
                  "pharmacist_ihs_number": "N10000001"},
}


def package_label(prescription_id: str) -> str:
    """``RX-2026-000123`` -> ``Paket obat RX-…123``: enough to match the bag, nothing more."""
    head = prescription_id.split("-", 1)[0][:4]
    return f"Paket obat {head}-…{prescription_id[-3:]}"


class MedicineDeliveryService(Service):
    name = "medicine_delivery"
    title = "Medicine delivery (Gancang Aron)"
    titles = {"id": "Pengantaran obat (Gancang Aron)"}
    description = ("A puskesmas or hospital pharmacy asks for a patient's prescription to be "
                   "carried home. The courier sees a sealed package, never its contents. The "
                   "answer carries a delivery PIN for the patient to tell the courier.")
    version = "0.2.0"
    order_kind = "delivery"
    request_schema = MedicineDeliveryRequestSchema
    config_schema = MedicineDeliveryConfigSchema
    example_request = EXAMPLE
    unique_reference_field = "prescription_id"
    delivery_pin = True

    def __init__(self):
        #: SATUSEHAT's token cache and HTTP session, one per gateway (``satusehat.py``)
        self.satusehat = SatusehatClient()

    def validate(self, payload, config):
        data = self.load_request(payload)
        errors: dict = {}
        locations = place_registry(config.get("pickup_locations", []), "pickup_locations")
        if data["pickup_location_id"] not in locations:
            errors["pickup_location_id"] = ["Unknown pickup location."]
        if not inside(config.get("service_area"), data["patient"]["location"]):
            errors["patient"] = {"location": ["Outside the service area."]}
        if errors:
            raise ValidationError(errors)
        allowed = set(config.get("allowed_restricted_categories", []))
        restricted = {f"items.{i}.category": [f"{item['category']} medicine may not be "
                                              "delivered by courier here."]
                      for i, item in enumerate(data["items"])
                      if item["category"] in RESTRICTED_CATEGORIES
                      and item["category"] not in allowed}
        if restricted:
            raise RequestRefused("restricted_medicine", "Some items may not be delivered by "
                                 "courier (BPOM 8/2020); hand them over at the pharmacy.",
                                 restricted)
        if not data["pharmacist_counselled"]:
            raise RequestRefused("counselling_required", "A pharmacist must counsel the patient "
                                 "before the medicine is dispatched.",
                                 {"pharmacist_counselled": ["Must be true before dispatch."]})
        return data

    def admit(self, data, config, eligibility):
        rule = config.get("eligibility", {})
        if rule.get("required") and eligibility is not None and not eligibility["eligible"]:
            raise RequestRefused("not_eligible", "The patient is not eligible for the "
                                 "subsidised delivery.",
                                 {"patient.nik": ["Not eligible for the subsidised delivery."]})

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
            package=Package(description=package_label(data["prescription_id"])),
            cold_chain=data["cold_chain"],
            requirements=frozenset({"cold_chain"}) if data["cold_chain"] else frozenset(),
        )

    def notice_contacts(self, data, config):
        """The patient gets the notices (and the PIN, by ``pin_recipient``), in the request's
        ``language``; a failed delivery names the puskesmas or pharmacy it left from and its
        phone. Never the address, the NIK or the items: notices take none of them."""
        origin = place_registry(config.get("pickup_locations", []),
                                "pickup_locations").get(data["pickup_location_id"], {})
        return NoticeContacts(name=data["patient"]["name"], phone=data["patient"]["phone"],
                              language=data.get("language"), office=origin.get("name"),
                              office_phone=origin.get("phone"))

    def views(self):
        def fhir(request, data, proof):
            if data is None:
                raise ViewGone("The prescription details were removed after the retention "
                               "period; the status history remains.")
            return dispense_bundle(request, data, proof)

        return {"fhir": View("A FHIR R4 Bundle of a Medication and a MedicationDispense per "
                             "item, as SATUSEHAT takes it", fhir, "application/fhir+json")}
