"""The FHIR R4 record of a delivery, shaped as SATUSEHAT takes a dispense: a ``Bundle``.

Pure mapping: :func:`dispense_bundle` turns a request (its summary, its stored body, its proof
and the courier's delivery time) into a ``transaction`` Bundle holding, per item, a
``Medication`` and the ``MedicationDispense`` that hands it over. Nothing here does I/O, so
the API's view and the SATUSEHAT sender (``satusehat.py``) give the same record.

Where the puskesmas gave its SATUSEHAT references (``satusehat``, ``patient.ihs_number``,
``items[].kfa_code`` ...), the record is what SATUSEHAT's MedicationDispense expects
(sources: ``shared/reference/government-and-health.md`` §2.3, SATUSEHAT's Medication,
MedicationRequest and MedicationDispense pages, HL7 FHIR R4 MedicationDispense):

* identifiers in the kemkes systems of the organization: ``prescription/{org}`` and
  ``prescription-item/{org}`` on the dispense, ``medication/{org}`` on the medication;
* the drug coded in KFA (``http://sys-ids.kemkes.go.id/kfa``);
* ``subject`` as ``Patient/{IHS number}``, ``context`` the ``Encounter``, ``performer`` the
  pharmacist's ``Practitioner``, ``location`` the pharmacy's ``Location``,
  ``authorizingPrescription`` the ``MedicationRequest``, ``category`` outpatient;
* ``quantity`` with its unit in HL7 v3 orderableDrugForm;
* times in UTC (SATUSEHAT stores UTC+00): ``whenPrepared`` is when the pharmacy asked for the
  delivery (the medicine was ready and counselled by then), ``whenHandedOver`` the courier's
  delivery time (:func:`gateway.records.delivery_time`), never our processing time, so
  ``whenHandedOver`` is never before ``whenPrepared`` (FHIR invariant mdd-1).

Without the references it is still valid R4: the patient identified by NIK, the drug by name.
Statuses follow the MedicationDispense value set: ``preparation`` until the courier has the
package, ``in-progress`` on the way, ``completed`` when handed over, ``cancelled`` or
``stopped`` otherwise. A request made with a test key is tagged ``HTEST`` ("test health
data", HL7 v3 ActReason) on the Bundle and every resource, so that no record system,
SATUSEHAT included, takes it for a real dispense.
"""

from __future__ import annotations

import uuid

NIK_SYSTEM = "https://fhir.kemkes.go.id/id/nik"
PRESCRIPTION_SYSTEM = "urn:gateway:prescription-id"
KEMKES_IDS = "http://sys-ids.kemkes.go.id"
KFA_SYSTEM = f"{KEMKES_IDS}/kfa"
DRUG_FORM_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
CATEGORY_SYSTEM = "http://terminology.hl7.org/fhir/CodeSystem/medicationdispense-category"
PROFILES = "https://fhir.kemkes.go.id/r4/StructureDefinition"
TEST_DATA_TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                 "code": "HTEST", "display": "test health data"}
#: the namespace of the resources' ids: the same request always gives the same ids, so a
#: record sent twice is recognisably the same record
ID_NAMESPACE = uuid.UUID("6f1c1f0e-2b1e-5a53-9d0e-4e1e5a7c0b17")

DISPENSE_STATUS = {
    "received": "preparation", "dispatching": "preparation", "outcome_unknown": "preparation",
    "booked": "preparation", "driver_assigned": "preparation", "picked_up": "in-progress",
    "delivered": "completed", "cancelled": "cancelled", "returned": "stopped",
    "no_driver": "stopped", "failed": "stopped",
}


def resource_id(request_id: str, kind: str, index: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{request_id}/{kind}/{index}"))


def kemkes_identifier(kind: str, organization_id: str, value: str) -> dict:
    return {"system": f"{KEMKES_IDS}/{kind}/{organization_id}", "use": "official",
            "value": value}


def _medication(item: dict, index: int, data: dict, organization_id: str | None) -> dict:
    resource: dict = {"resourceType": "Medication", "status": "active"}
    if organization_id:
        resource["meta"] = {"profile": [f"{PROFILES}/Medication"]}
        resource["identifier"] = [kemkes_identifier(
            "medication", organization_id, f"{data['prescription_id']}-{index + 1}")]
    resource["code"] = ({"coding": [{"system": KFA_SYSTEM, "code": item["kfa_code"],
                                     "display": item["name"]}], "text": item["name"]}
                        if item.get("kfa_code") else {"text": item["name"]})
    return resource


def _quantity(item: dict) -> dict:
    quantity: dict = {"value": item["quantity"]}
    if item.get("unit"):
        quantity.update(system=DRUG_FORM_SYSTEM, code=item["unit"], unit=item["unit"])
    return quantity


def _dispense(request: dict, data: dict, proof: dict | None, item: dict, index: int,
              medication_url: str) -> dict:
    refs = data.get("satusehat") or {}
    organization_id = refs.get("organization_id")
    patient = data["patient"]
    status = DISPENSE_STATUS[request["status"]]
    resource: dict = {"resourceType": "MedicationDispense"}
    if organization_id:
        resource["meta"] = {"profile": [f"{PROFILES}/MedicationDispense"]}
        resource["identifier"] = [
            kemkes_identifier("prescription", organization_id, data["prescription_id"]),
            kemkes_identifier("prescription-item", organization_id,
                              f"{data['prescription_id']}-{index + 1}")]
    else:
        resource["identifier"] = [{"system": PRESCRIPTION_SYSTEM,
                                   "value": data["prescription_id"]}]
    resource.update(
        status=status,
        category={"coding": [{"system": CATEGORY_SYSTEM, "code": "outpatient",
                              "display": "Outpatient"}]},
        medicationReference={"reference": medication_url, "display": item["name"]},
        subject=({"reference": f"Patient/{patient['ihs_number']}", "display": patient["name"]}
                 if patient.get("ihs_number") else
                 {"display": patient["name"],
                  "identifier": {"system": NIK_SYSTEM, "value": patient["nik"]}}))
    if refs.get("encounter_id"):
        resource["context"] = {"reference": f"Encounter/{refs['encounter_id']}"}
    if refs.get("pharmacist_ihs_number"):
        resource["performer"] = [{"actor": {
            "reference": f"Practitioner/{refs['pharmacist_ihs_number']}"}}]
    if refs.get("location_id"):
        resource["location"] = {"reference": f"Location/{refs['location_id']}"}
    if item.get("medication_request_id"):
        resource["authorizingPrescription"] = [{
            "reference": f"MedicationRequest/{item['medication_request_id']}"}]
    resource["quantity"] = _quantity(item)
    resource["whenPrepared"] = request["created_at"]
    if status == "completed" and request.get("delivered_at"):
        resource["whenHandedOver"] = request["delivered_at"]
    if status == "completed":
        receiver = (proof or {}).get("receiver_name") or patient["name"]
        resource["receiver"] = [{"display": receiver}]
    resource["note"] = [{"text": f"Home delivery by {request['provider'] or 'a courier'}"
                                 + (f", booking {request['provider_reference']}"
                                    if request["provider_reference"] else "")}]
    return resource


def dispense_bundle(request: dict, data: dict, proof: dict | None) -> dict:
    """The record of one delivery: a ``transaction`` Bundle of a ``Medication`` and a
    ``MedicationDispense`` per item, entries linked by ``urn:uuid`` full URLs (no resource
    ids: the server assigns them) as SATUSEHAT's transaction Bundles are.

    :param request: the request's summary (``gateway.records.view_request``), with
        ``delivered_at`` (the courier's delivery time, ISO 8601 UTC, or None)
    :param data: the stored request body (see ``schemas.py``)
    :param proof: the delivery proof, or None
    """
    test = request.get("key_type") == "test"
    organization_id = (data.get("satusehat") or {}).get("organization_id")
    entries = []
    for index, item in enumerate(data["items"]):
        medication_id = resource_id(request["id"], "medication", index)
        dispense_id = resource_id(request["id"], "dispense", index)
        medication = _medication(item, index, data, organization_id)
        dispense = _dispense(request, data, proof, item, index, f"urn:uuid:{medication_id}")
        for full_id, resource in ((medication_id, medication), (dispense_id, dispense)):
            if test:
                resource.setdefault("meta", {})["tag"] = [dict(TEST_DATA_TAG)]
            entries.append({"fullUrl": f"urn:uuid:{full_id}", "resource": resource,
                            "request": {"method": "POST", "url": resource["resourceType"]}})
    bundle: dict = {"resourceType": "Bundle", "id": request["id"], "type": "transaction"}
    if test:
        bundle["meta"] = {"tag": [dict(TEST_DATA_TAG)]}
    bundle["entry"] = entries
    return bundle
