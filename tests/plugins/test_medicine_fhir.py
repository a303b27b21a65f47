"""The medicine record as SATUSEHAT takes it: the references a puskesmas gives, and the FHIR R4
Bundle of a delivered request, validated with ``fhir.resources`` (its R4B models, which
validate R4 MedicationDispense, Medication and Bundle as they are in R4)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from gateway.models import ProviderEventRecord, utcnow
from gateway.purge import purge_expired
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"
ORG = "100011961"
REFERENCES = {
    "organization_id": ORG,
    "location_id": "b017aa54-f1df-4ec2-9d84-8823815d7228",
    "encounter_id": "2823ed1d-3e3e-434e-9a5b-9c579d192363",
    "pharmacist_ihs_number": "N10000001",
}
IHS = "P02478375538"
MEDICATION_REQUEST = "b5293e13-4a53-4b5a-9e88-0e8e9c2b2f4e"


@pytest.fixture
def referenced_body(medicine_body):
    medicine_body["patient"]["ihs_number"] = IHS
    medicine_body["items"][0].update(kfa_code="93000317", unit="TAB",
                                     medication_request_id=MEDICATION_REQUEST)
    medicine_body["satusehat"] = dict(REFERENCES)
    return medicine_body


def entries(bundle: Bundle, resource_type: str) -> list:
    return [e for e in bundle.entry if e.resource.get_resource_type() == resource_type]


def test_a_delivered_request_with_all_references_is_a_satusehat_bundle(
        gosend_app, referenced_body, caplog):
    caplog.set_level(logging.DEBUG)
    app = gosend_app()
    key = new_key(app, key_type="test")
    client = app.test_client()
    request_id = client.post(CREATE, json=referenced_body, headers=bearer(key)).get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    drain(app)
    response = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key))
    assert response.mimetype == "application/fhir+json"
    bundle = Bundle.model_validate(response.get_json())
    assert bundle.type == "transaction"

    (medication_entry,) = entries(bundle, "Medication")
    (dispense_entry,) = entries(bundle, "MedicationDispense")
    medication, dispense = medication_entry.resource, dispense_entry.resource
    assert (medication.code.coding[0].system, medication.code.coding[0].code) == (
        "http://sys-ids.kemkes.go.id/kfa", "93000317")
    assert medication.identifier[0].system == f"http://sys-ids.kemkes.go.id/medication/{ORG}"
    assert dispense.medicationReference.reference == medication_entry.fullUrl
    assert [i.system for i in dispense.identifier] == [
        f"http://sys-ids.kemkes.go.id/prescription/{ORG}",
        f"http://sys-ids.kemkes.go.id/prescription-item/{ORG}"]
    assert dispense.identifier[0].value == "RX-2026-000123"
    assert dispense.subject.reference == f"Patient/{IHS}"
    assert dispense.context.reference == f"Encounter/{REFERENCES['encounter_id']}"
    assert dispense.performer[0].actor.reference == "Practitioner/N10000001"
    assert dispense.location.reference == f"Location/{REFERENCES['location_id']}"
    assert dispense.authorizingPrescription[0].reference == \
        f"MedicationRequest/{MEDICATION_REQUEST}"
    assert dispense.category.coding[0].code == "outpatient"
    assert (dispense.quantity.value, dispense.quantity.code, dispense.quantity.system) == (
        30, "TAB", "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm")
    assert [t.code for t in bundle.meta.tag] == ["HTEST"]

    # Handed over when the courier says it delivered, not when we processed its report.
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        # the first report of it (a poll may have read "delivered" again since)
        delivered = session.scalars(select(ProviderEventRecord).where(
            ProviderEventRecord.request_id == request_id,
            ProviderEventRecord.status == "delivered").order_by(ProviderEventRecord.id)).first()
        courier_time = delivered.occurred_at
    detail = client.get(f"/api/v1/requests/{request_id}", headers=bearer(key)).get_json()
    assert courier_time is not None
    assert dispense.whenHandedOver == courier_time
    assert dispense.whenHandedOver.isoformat() != detail["updated_at"]
    assert dispense.whenPrepared <= dispense.whenHandedOver

    # Health data: never in a log line, and gone with the request's personal data.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in (IHS, "93000317", MEDICATION_REQUEST, REFERENCES["encounter_id"]):
        assert value not in logged
    assert purge_expired(gateway, now=utcnow() + timedelta(days=3650)) == 1
    gone = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key))
    assert (gone.status_code, gone.get_json()["code"]) == (410, "personal_data_purged")


def test_the_bundle_without_references_is_still_valid_r4(app, medicine_body):
    key = new_key(app)
    client = app.test_client()
    request_id = client.post(CREATE, json=medicine_body, headers=bearer(key)).get_json()["id"]
    bundle = Bundle.model_validate(client.get(f"/api/v1/requests/{request_id}/fhir",
                                              headers=bearer(key)).get_json())
    (dispense,) = [e.resource for e in entries(bundle, "MedicationDispense")]
    assert dispense.subject.identifier.value == "3510011203650002"
    assert dispense.whenHandedOver is None and bundle.meta is None


@pytest.mark.parametrize(("where", "value", "path"), [
    ("patient", {"ihs_number": "P0247\n"}, "patient.ihs_number"),
    ("patient", {"ihs_number": "P02478375538\n"}, "patient.ihs_number"),
    ("item", {"kfa_code": "93000317/../x"}, "items.0.kfa_code"),
    ("item", {"kfa_code": "\u0669" * 8}, "items.0.kfa_code"),   # Arabic-Indic digits
    ("top", {"prescription_id": "RX-2026-000123\n"}, "prescription_id"),
    ("patient", {"nik": "3510011203650002\n"}, "patient.nik"),
    ("item", {"unit": "tablet"}, "items.0.unit"),
    ("item", {"medication_request_id": "a b"}, "items.0.medication_request_id"),
    ("item", {"medication_request_id": ".."}, "items.0.medication_request_id"),
    ("satusehat", {"organization_id": "../Patient/1"}, "satusehat.organization_id"),
    ("satusehat", {"organization_id": ORG, "encounter_id": "x" * 65},
     "satusehat.encounter_id"),
    ("satusehat", {"organization_id": ORG, "pharmacist_ihs_number": "Dr. Anna"},
     "satusehat.pharmacist_ihs_number"),
    ("satusehat", {"location_id": "b017aa54"}, "satusehat.organization_id"),
    ("satusehat", {"organization_id": ORG, "nik": "3510011203650002"}, "satusehat.nik"),
])
def test_satusehat_references_are_checked_with_field_paths_and_never_echoed(
        app, medicine_body, where, value, path):
    if where == "patient":
        medicine_body["patient"].update(value)
    elif where == "item":
        medicine_body["items"][0].update(value)
    elif where == "top":
        medicine_body.update(value)
    else:
        medicine_body["satusehat"] = value
    response = app.test_client().post(CREATE, json=medicine_body, headers=bearer(new_key(app)))
    body = response.get_json()
    assert (response.status_code, body["code"]) == (422, "validation_failed"), body
    assert path in body["fields"], body
    text = response.get_data(as_text=True)
    for given in value.values():
        if given not in (ORG,):
            assert given not in text
