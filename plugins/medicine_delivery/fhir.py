"""A FHIR R4 ``MedicationDispense``-shaped view of a delivery, for the pharmacy's records.

Pure mapping. Statuses follow the MedicationDispense value set: the delivery is in
``preparation`` until the courier has the package, ``in-progress`` on the way, ``completed``
when handed over, ``cancelled`` or ``stopped`` otherwise. The patient is identified by NIK
with the system SATUSEHAT uses. A request made with a test key is tagged ``HTEST`` ("test
health data", HL7 v3 ActReason) so that no record system, SATUSEHAT included, takes it for a
real dispense.
"""

from __future__ import annotations

NIK_SYSTEM = "https://fhir.kemkes.go.id/id/nik"
PRESCRIPTION_SYSTEM = "urn:gateway:prescription-id"
TEST_DATA_TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                 "code": "HTEST", "display": "test health data"}

DISPENSE_STATUS = {
    "received": "preparation", "dispatching": "preparation", "outcome_unknown": "preparation",
    "booked": "preparation", "driver_assigned": "preparation", "picked_up": "in-progress",
    "delivered": "completed", "cancelled": "cancelled", "returned": "stopped",
    "no_driver": "stopped", "failed": "stopped",
}


def medication_dispense(request: dict, data: dict, proof: dict | None) -> dict:
    items = data["items"]
    resource = {
        "resourceType": "MedicationDispense",
        "id": request["id"],
        "identifier": [{"system": PRESCRIPTION_SYSTEM, "value": data["prescription_id"]}],
        "status": DISPENSE_STATUS[request["status"]],
        "medicationCodeableConcept": {"text": "; ".join(
            f"{item['name']} x{item['quantity']}" for item in items)},
        "subject": {"display": data["patient"]["name"],
                    "identifier": {"system": NIK_SYSTEM, "value": data["patient"]["nik"]}},
        "note": [{"text": f"Home delivery by {request['provider'] or 'a courier'}"
                          + (f", booking {request['provider_reference']}"
                             if request["provider_reference"] else "")}],
    }
    if request.get("key_type") == "test":
        resource["meta"] = {"tag": [dict(TEST_DATA_TAG)]}
    if len(items) == 1:
        resource["quantity"] = {"value": items[0]["quantity"]}
    if request["status"] == "delivered":
        resource["whenHandedOver"] = request["updated_at"]
        receiver = (proof or {}).get("receiver_name") or data["patient"]["name"]
        resource["receiver"] = [{"display": receiver}]
    return resource
