"""Medicine delivery as the health office uses it: each rule of the service, and its privacy,
tried through the API, with the GO-SEND simulator watching where a courier is involved."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import inspect, select, text

from gateway.audit import verify_chain
from gateway.crypto import UnreadableSecret
from gateway.models import AuditRecord, ServiceRequest, utcnow
from gateway.purge import purge_expired
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"
PERSONAL = ("3510011203650002", "Siti Aminah", "6281234567890", "Letjen S. Parman No. 5",
            "Amlodipine")


def post(app, key, body):
    return app.test_client().post(CREATE, json=body, headers=bearer(key))


def refused(response, status, code, field):
    body = response.get_json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert field in body["fields"], body
    return body


def test_the_example_body_is_accepted_with_a_delivery_pin_and_an_eligibility_decision(
        app, medicine_body):
    response = post(app, new_key(app), medicine_body)
    assert response.status_code == 202
    body = response.get_json()
    assert len(body["delivery_pin"]) == 6
    assert body["eligibility"]["eligible"] is True
    assert body["eligibility"]["source"] == "config:always"


@pytest.mark.parametrize("category", ["narcotic", "psychotropic", "precursor", "injectable"])
def test_restricted_medicine_is_refused_with_its_own_code(app, medicine_body, category):
    medicine_body["items"].append({"name": "Something", "quantity": 1, "category": category})
    refused(post(app, new_key(app), medicine_body), 422, "restricted_medicine",
            "items.1.category")


def test_insulin_is_the_injectable_that_may_travel(app, medicine_body):
    medicine_body["items"] = [{"name": "Insulin glargine", "quantity": 1, "category": "insulin"}]
    assert post(app, new_key(app), medicine_body).status_code == 202


def test_a_regency_may_allow_a_restricted_category_in_config(make_app, medicine_body):
    app = make_app(services={"medicine_delivery": {
        "couriers": [], "allowed_restricted_categories": ["injectable"]}})
    medicine_body["items"][0]["category"] = "injectable"
    assert post(app, new_key(app), medicine_body).status_code == 202
    medicine_body["items"][0]["category"] = "narcotic"
    refused(post(app, new_key(app), medicine_body), 422, "restricted_medicine",
            "items.0.category")


def test_dispatch_requires_pharmacist_counselling(app, medicine_body):
    medicine_body["pharmacist_counselled"] = False
    refused(post(app, new_key(app), medicine_body), 422, "counselling_required",
            "pharmacist_counselled")


def test_a_prescription_has_one_active_request_per_agency(app, medicine_body):
    key = new_key(app)
    first = post(app, key, medicine_body).get_json()["id"]
    refused(post(app, key, medicine_body), 409, "duplicate_reference", "prescription_id")
    assert post(app, new_key(app), medicine_body).status_code == 202  # another agency
    app.test_client().post(f"/api/v1/requests/{first}/cancel", headers=bearer(key))
    assert post(app, key, medicine_body).status_code == 202  # the first one has ended


SECRET_KEY = "bT8P0p2nF0Cc7hQvQeQm2y7dX1y3oW9Jm7Yx0i4bYjQ="
OTHER_DEPLOYMENTS_KEY = "8Yl1cS2Tz3sP9r0nVqU6wXhJkLm4NoPqRsTuVwXyZ0A="


def digest(nik, key=SECRET_KEY):
    from gateway.crypto import IdentifierDigests

    return IdentifierDigests(key).digest(nik)


def brute_force(entries, candidate_digest):
    """What an attacker who reads the settings does: hash every NIK of a range (here: one
    kecamatan's prefix, one birth year, serials up to 99) and look for it in the list."""
    targets = set(entries)
    for day in range(1, 72):
        for month in range(1, 13):
            for serial in range(100):
                nik = f"351001{day:02d}{month:02d}65{serial:04d}"
                if candidate_digest(nik) in targets:
                    return nik
    return None


def test_an_allow_list_entry_cannot_be_reversed_by_hashing_a_range_of_niks(
        make_app, medicine_body):
    nik = medicine_body["patient"]["nik"]
    app = make_app(secret_key=SECRET_KEY, services={"medicine_delivery": {
        "couriers": [], "eligibility": {"rule": "allow_list",
                                        "allow_list_nik_hmac": [digest(nik)]}}})
    stored = app.extensions["gateway"].service_configs["medicine_delivery"]["eligibility"]
    entries = [entry for key, values in stored.items() if key.startswith("allow_list")
               for entry in values]
    assert entries
    assert brute_force(entries, lambda n: hashlib.sha256(n.encode()).hexdigest()) is None
    assert post(app, new_key(app), medicine_body).get_json()["eligibility"]["eligible"]


def test_the_old_bare_sha256_list_is_refused_naming_the_new_key_and_the_command(make_app):
    from gateway.settings import ConfigError

    old = hashlib.sha256(b"3510011203650002").hexdigest()
    with pytest.raises(ConfigError) as refused_config:
        make_app(services={"medicine_delivery": {"couriers": [], "eligibility": {
            "rule": "allow_list", "allow_list_nik_sha256": [old]}}})
    message = str(refused_config.value)
    assert "eligibility.allow_list_nik_sha256" in message
    assert "allow_list_nik_hmac" in message and "gateway identifiers digest" in message


def test_a_list_made_with_another_deployments_key_matches_no_one(make_app, medicine_body):
    nik = medicine_body["patient"]["nik"]
    app = make_app(secret_key=SECRET_KEY, services={"medicine_delivery": {
        "couriers": [], "eligibility": {"rule": "allow_list", "allow_list_nik_hmac": [
            digest(nik, OTHER_DEPLOYMENTS_KEY)]}}})
    assert post(app, new_key(app), medicine_body).get_json()["eligibility"]["eligible"] is False


def test_a_list_made_before_a_key_rotation_still_matches(make_app, medicine_body):
    nik = medicine_body["patient"]["nik"]
    app = make_app(secret_key=f"{OTHER_DEPLOYMENTS_KEY},{SECRET_KEY}", services={
        "medicine_delivery": {"couriers": [], "eligibility": {
            "rule": "allow_list", "allow_list_nik_hmac": [digest(nik, SECRET_KEY)]}}})
    assert post(app, new_key(app), medicine_body).get_json()["eligibility"]["eligible"]


@pytest.mark.parametrize("rule, listed, eligible", [
    ("allow_list", True, True), ("allow_list", False, False), ("never", False, False)])
def test_eligibility_follows_the_configured_rule_and_only_the_decision_is_kept(
        make_app, medicine_body, rule, listed, eligible):
    entry = digest(medicine_body["patient"]["nik"])
    app = make_app(secret_key=SECRET_KEY, services={"medicine_delivery": {
        "couriers": [], "eligibility": {
            "rule": rule, "allow_list_nik_hmac": [entry] if listed else ["0" * 64]}}})
    body = post(app, new_key(app), medicine_body).get_json()
    assert body["eligibility"]["eligible"] is eligible
    assert body["eligibility"]["source"] == f"config:{rule}"
    with app.extensions["gateway"].db.read() as session:
        stored = session.get(ServiceRequest, body["id"]).eligibility
    assert set(stored) == {"eligible", "source", "decided_at"}


def test_an_ineligible_patient_is_refused_when_the_rule_is_required(make_app, medicine_body):
    app = make_app(services={"medicine_delivery": {
        "couriers": [], "eligibility": {"rule": "never", "required": True}}})
    refused(post(app, new_key(app), medicine_body), 422, "not_eligible", "patient.nik")


def test_gosend_receives_no_nik_no_drug_names_and_no_quantities(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    medicine_body["items"] = [{"name": "Amlodipine 10 mg", "quantity": 30},
                              {"name": "Metformin 500 mg", "quantity": 60}]
    request_id = post(app, key, medicine_body).get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    received = json.dumps(requests.get(f"{gateway_gosend.url}/_sim/requests", timeout=5).json())
    for secret in ("3510011203650002", "Amlodipine", "Metformin", '"30"', '"60"', "x30"):
        assert secret not in received
    (create,) = [r for r in json.loads(received) if r["method"] == "POST"]
    assert create["json"]["routes"][0]["item"].startswith("Paket obat RX-…123")
    assert create["json"]["routes"][0]["destinationNote"] == "Rumah pagar hijau"


def test_cold_chain_medicine_never_reaches_gosend(gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    medicine_body["cold_chain"] = True
    request_id = post(app, key, medicine_body).get_json()["id"]
    wait_for_status(app, request_id, "booked")
    detail = app.test_client().get(f"/api/v1/requests/{request_id}", headers=bearer(key))
    assert detail.get_json()["provider"] == "own_fleet"
    assert requests.get(f"{gateway_gosend.url}/_sim/requests", timeout=5).json() == []


def test_a_delivered_request_has_gosend_proof_and_a_valid_fhir_view(
        gosend_app, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    request_id = post(app, key, medicine_body).get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    client = app.test_client()
    detail = client.get(f"/api/v1/requests/{request_id}", headers=bearer(key)).get_json()
    assert detail["proof"]["receiver_name"] == "Siti Aminah"
    assert detail["proof"]["courier"] == "gosend_sandbox"
    response = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key))
    assert response.mimetype == "application/fhir+json"
    (dispense,) = [e.resource for e in Bundle.model_validate(response.get_json()).entry
                   if e.resource.get_resource_type() == "MedicationDispense"]
    assert dispense.status == "completed"
    assert dispense.receiver[0].display == "Siti Aminah"
    assert dispense.whenHandedOver is not None
    assert dispense.subject.identifier.value == "3510011203650002"
    assert dispense.quantity.value == 30


def test_the_fhir_view_follows_the_status_and_is_scoped_to_the_agency(app, medicine_body):
    key = new_key(app)
    request_id = post(app, key, medicine_body).get_json()["id"]
    client = app.test_client()
    bundle = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key)).get_json()
    dispense = Bundle.model_validate(bundle).entry[1].resource
    assert dispense.status == "preparation"
    assert dispense.whenHandedOver is None
    stranger = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(new_key(app)))
    assert (stranger.status_code, stranger.get_json()["code"]) == (404, "request_not_found")
    unknown = client.get(f"/api/v1/requests/{request_id}/hl7v2", headers=bearer(key))
    assert (unknown.status_code, unknown.get_json()["code"]) == (404, "not_found")


def _everything_in_the_database(gateway) -> list:
    values = []
    with gateway.db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                values.extend(row)
    opened = []
    for value in values:
        if isinstance(value, bytes | memoryview):
            try:
                plain = gateway.vault.open_bytes(bytes(value))
            except UnreadableSecret:
                plain = bytes(value)
            try:        # a sealed document, or sealed bytes (a proof image, if fetched by now)
                opened.append(json.dumps(json.loads(plain)))
            except ValueError:
                opened.append(plain.decode(errors="replace"))
        else:
            opened.append(json.dumps(value, default=str))
    return opened


def test_the_purge_leaves_no_personal_data_and_keeps_the_history(gosend_app, medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    request_id = post(app, key, medicine_body).get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    drain(app)
    before = " ".join(_everything_in_the_database(gateway))
    assert all(p in before for p in ("3510011203650002", "Siti Aminah"))

    assert purge_expired(gateway, now=utcnow() + timedelta(days=29)) == 0  # within retention
    assert purge_expired(gateway, now=utcnow() + timedelta(days=31)) == 1
    after = " ".join(_everything_in_the_database(gateway))
    leaked = [p for p in PERSONAL if p in after]
    assert leaked == []

    client = app.test_client()
    detail = client.get(f"/api/v1/requests/{request_id}", headers=bearer(key)).get_json()
    assert detail["status"] == "delivered" and detail["purged_at"]
    assert [e["status"] for e in detail["timeline"] if e["applied"]][-1] == "delivered"
    assert detail["delivery_pin"] is None and detail["proof"] is None
    gone = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key))
    assert (gone.status_code, gone.get_json()["code"]) == (410, "personal_data_purged")
    with gateway.db.read() as session:
        assert verify_chain(session).ok
        assert session.scalars(select(AuditRecord.target)
                               .where(AuditRecord.action == "request.purge")).all() == [
            f"request:{request_id}"]


def test_logs_never_carry_the_nik_the_name_or_the_medicine(gosend_app, medicine_body, caplog):
    caplog.set_level(logging.DEBUG)
    app = gosend_app()
    key = new_key(app, key_type="test")
    request_id = post(app, key, medicine_body).get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    medicine_body["patient"]["nik"] = "12"
    post(app, key, medicine_body)  # a validation error, logged nowhere with its values
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged
    for secret in ("3510011203650002", "Siti Aminah", "Amlodipine", "6281234567890"):
        assert secret not in logged


def test_the_migration_removes_old_lists_from_saved_settings_and_fails_closed(
        make_app, medicine_body, caplog):
    from gateway.liveconfig import effective_section
    from gateway.migrate import upgrade
    from gateway.models import ConfigVersion

    app = make_app(secret_key=SECRET_KEY)
    gateway = app.extensions["gateway"]
    old = hashlib.sha256(medicine_body["patient"]["nik"].encode()).hexdigest()
    saved = {**effective_section(gateway, "service:medicine_delivery"), "eligibility": {
        "rule": "allow_list", "required": True, "allow_list_nik_sha256": [old]}}
    with gateway.db.write() as session:          # a console version saved before the change
        session.execute(text("DELETE FROM alembic_version"))
        session.execute(text("INSERT INTO alembic_version VALUES ('0007')"))
        session.add(ConfigVersion(target="service:medicine_delivery", data=saved,
                                  author="admin:ani"))
    with caplog.at_level(logging.WARNING):
        upgrade(gateway.db, "0008")     # that migration alone; later ones are already applied
    assert "removed 1 bare SHA-256 NIK digest(s)" in caplog.text
    with gateway.db.read() as session:
        rows = session.execute(select(ConfigVersion.data)).scalars().all()
    assert rows and old not in json.dumps(rows)
    gateway.refresh_config(force=True)
    refused(post(app, new_key(app), medicine_body), 422, "not_eligible", "patient.nik")
