"""The agency API: intake, validation, idempotency, reading, listing and cancelling."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from rq import Queue
from rq.job import Job
from sqlalchemy import func, select

from gateway.batch import READY_KEY
from gateway.models import AuditRecord, ServiceRequest, StatusEvent

CREATE = "/api/v1/services/medicine_delivery/requests"


def count_requests(gateway) -> int:
    with gateway.db.read() as session:
        return session.scalar(select(func.count()).select_from(ServiceRequest))


def test_a_valid_request_is_stored_audited_and_queued_with_its_id_only(
        agency, medicine_body, gateway, gateway_redis):
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "received"
    assert body["reference"] == "RX-2026-000123"
    assert [e["status"] for e in body["timeline"]] == ["received"]
    assert response.headers["Location"] == f"/api/v1/requests/{body['id']}"

    with gateway.db.read() as session:
        record = session.get(ServiceRequest, body["id"])
        assert record.pending_job == "dispatch"
        assert gateway.vault.open(record.payload_ciphertext)["patient"]["nik"] == \
            "3510011203650002"
        actions = session.scalars(select(AuditRecord.action)).all()
    assert "request.create" in actions

    # Waiting for a batch job (gateway.batch): the list holds its id, the job no arguments.
    assert gateway_redis.lrange(READY_KEY, 0, -1) == [body["id"].encode()]
    queue = Queue("dispatch", connection=gateway_redis)
    assert len(queue.job_ids) == 1
    job = Job.fetch(queue.job_ids[0], connection=gateway_redis)
    assert job.func_name == "gateway.jobs.dispatch_batch" and job.args == ()


def test_personal_data_is_encrypted_at_rest_and_kept_out_of_redis(
        agency, medicine_body, gateway, gateway_redis):
    agency.post(CREATE, json=medicine_body)
    with gateway.db.read() as session:
        record = session.scalars(select(ServiceRequest)).one()
        audit_text = json.dumps([r.details for r in session.scalars(select(AuditRecord))])
    assert b"3510011203650002" not in record.payload_ciphertext
    assert b"Siti" not in record.payload_ciphertext
    assert "3510011203650002" not in audit_text and "Siti" not in audit_text
    for key in gateway_redis.keys("*"):
        if gateway_redis.type(key) == b"hash":
            dump = b"".join(v for v in gateway_redis.hgetall(key).values())
            assert b"3510011203650002" not in dump and b"Siti" not in dump


def test_phone_numbers_are_normalised_to_plus_62(agency, medicine_body, gateway):
    medicine_body["patient"]["phone"] = "0812-3456-7890"
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 202
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, response.get_json()["id"])
        assert gateway.vault.open(record.payload_ciphertext)["patient"]["phone"] == \
            "+6281234567890"


def test_a_patient_phone_must_be_a_mobile_a_courier_can_call(agency, medicine_body, gateway):
    """A fixed line is a real number, but the courier at the door cannot reach the patient on
    it: refused like any invalid field, at its path, and nothing stored."""
    medicine_body["patient"]["phone"] = "(0333) 421-234"
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "validation_failed"
    assert list(body["fields"]) == ["patient.phone"]
    assert "mobile" in " ".join(body["fields"]["patient.phone"])
    assert count_requests(gateway) == 0


def test_each_invalid_field_is_named_with_its_path_and_nothing_is_stored(
        agency, medicine_body, gateway):
    medicine_body["patient"]["nik"] = "35100112"
    medicine_body["patient"]["phone"] = "12345"
    medicine_body["items"][0]["quantity"] = 0
    medicine_body["pickup_location_id"] = "puskesmas-nowhere"
    medicine_body["unexpected"] = True
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "validation_failed"
    assert set(body["fields"]) == {"patient.nik", "patient.phone", "items.0.quantity",
                                   "unexpected"}
    assert count_requests(gateway) == 0


def test_config_rules_are_checked_after_the_schema(agency, medicine_body):
    medicine_body["pickup_location_id"] = "puskesmas-nowhere"
    medicine_body["patient"]["location"] = {"lat": -6.2, "lng": 106.8}  # Jakarta
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"pickup_location_id", "patient.location"}


def test_a_float_quantity_is_refused_not_truncated(agency, medicine_body):
    medicine_body["items"][0]["quantity"] = 2.5
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 422
    assert "items.0.quantity" in response.get_json()["fields"]


def test_bodies_that_are_not_json_objects_get_clear_errors(agency, gateway):
    not_json = agency.post(CREATE, data="{not json", content_type="application/json")
    assert (not_json.status_code, not_json.get_json()["code"]) == (400, "invalid_json")
    wrong_type = agency.post(CREATE, data="a=b", content_type="application/x-www-form-urlencoded")
    assert (wrong_type.status_code, wrong_type.get_json()["code"]) == \
        (415, "unsupported_media_type")
    a_list = agency.post(CREATE, json=[1, 2])
    assert (a_list.status_code, a_list.get_json()["code"]) == (422, "validation_failed")
    assert count_requests(gateway) == 0


def test_an_oversized_body_is_refused_with_413(agency, medicine_body, gateway):
    medicine_body["notes_for_courier"] = "x" * 300_000
    response = agency.post(CREATE, json=medicine_body)
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"
    assert count_requests(gateway) == 0


def test_unknown_and_unallowed_services_are_refused(gateway_make_agency, medicine_body):
    agency = gateway_make_agency(key_type="live", services=["umkm_pickup"])
    assert agency.post("/api/v1/services/pizza/requests", json={}).get_json()["code"] == \
        "service_not_found"
    refused = agency.post(CREATE, json=medicine_body)
    assert (refused.status_code, refused.get_json()["code"]) == (403, "service_not_allowed")
    listed = agency.get("/api/v1/services").get_json()["services"]
    assert [s["name"] for s in listed] == ["umkm_pickup"]


def test_services_list_carries_each_request_json_schema(agency):
    services = {s["name"]: s for s in agency.get("/api/v1/services").get_json()["services"]}
    schema = services["medicine_delivery"]["request_schema"]
    assert schema["type"] == "object"
    assert "nik" in schema["properties"]["patient"]["properties"]
    assert set(schema["required"]) >= {"prescription_id", "patient", "items"}
    assert services["tourism_transport"]["order_kind"] == "ride"


def test_a_retried_post_with_the_same_idempotency_key_returns_the_same_request(
        agency, medicine_body, gateway, gateway_redis):
    headers = {"Idempotency-Key": "rx-000123-attempt"}
    first = agency.post(CREATE, json=medicine_body, headers=headers)
    again = agency.post(CREATE, json=medicine_body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_requests(gateway) == 1
    assert gateway_redis.lrange(READY_KEY, 0, -1) == [first.get_json()["id"].encode()]


def test_the_same_idempotency_key_with_another_body_is_refused(agency, medicine_body, gateway):
    headers = {"Idempotency-Key": "k-1"}
    agency.post(CREATE, json=medicine_body, headers=headers)
    medicine_body["items"][0]["quantity"] = 60
    response = agency.post(CREATE, json=medicine_body, headers=headers)
    assert (response.status_code, response.get_json()["code"]) == (409, "idempotency_key_reused")
    assert count_requests(gateway) == 1


def test_idempotency_keys_belong_to_one_agency(gateway_make_agency, medicine_body):
    one, two = gateway_make_agency(key_type="live"), gateway_make_agency(key_type="live")
    headers = {"Idempotency-Key": "shared-key"}
    a = one.post(CREATE, json=medicine_body, headers=headers).get_json()["id"]
    b = two.post(CREATE, json=medicine_body, headers=headers).get_json()["id"]
    assert a != b


def test_a_request_reads_back_with_its_timeline(agency, medicine_body, gateway_worker):
    request_id = agency.post(CREATE, json=medicine_body).get_json()["id"]
    gateway_worker.drain()
    body = agency.get(f"/api/v1/requests/{request_id}").get_json()
    assert body["id"] == request_id
    assert [e["status"] for e in body["timeline"]] == ["received", "dispatching", "failed"]
    assert body["failure_code"] == "no_courier_available"


def test_another_agencys_request_is_indistinguishable_from_a_missing_one(
        gateway_make_agency, medicine_body):
    owner, stranger = gateway_make_agency(key_type="live"), gateway_make_agency(key_type="live")
    request_id = owner.post(CREATE, json=medicine_body).get_json()["id"]
    theirs = stranger.get(f"/api/v1/requests/{request_id}")
    missing = stranger.get("/api/v1/requests/00000000-0000-0000-0000-000000000000")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json()["code"] == missing.get_json()["code"] == "request_not_found"
    assert theirs.get_json()["message"] == missing.get_json()["message"]
    assert stranger.post(f"/api/v1/requests/{request_id}/cancel").status_code == 404
    assert stranger.get("/api/v1/requests").get_json()["requests"] == []


def test_listing_filters_and_pages_through_every_request_once(
        agency, medicine_body, gateway):
    ids = []
    for n in range(7):
        medicine_body["prescription_id"] = f"RX-{n}"
        ids.append(agency.post(CREATE, json=medicine_body).get_json()["id"])
    seen, cursor = [], None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = agency.get(f"/api/v1/requests?{query}").get_json()
        seen.extend(r["id"] for r in page["requests"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert agency.get("/api/v1/requests?service=umkm_pickup").get_json()["requests"] == []
    assert len(agency.get("/api/v1/requests?status=received").get_json()["requests"]) == 7
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    after = agency.get("/api/v1/requests", query_string={"created_after": future})
    assert after.get_json()["requests"] == []


def test_bad_list_queries_are_422_naming_the_parameter(agency):
    for query, field in (("status=lost", "status"), ("limit=0", "limit"),
                         ("created_after=yesterday", "created_after"),
                         ("cursor=%25%25%25", "cursor"), ("cursor=12.zz", "cursor"),
                         ("colour=red", "colour")):
        response = agency.get(f"/api/v1/requests?{query}")
        assert response.status_code == 422, query
        assert field in response.get_json()["fields"], query


def test_cancelling_before_dispatch_is_immediate_and_the_job_then_does_nothing(
        agency, medicine_body, gateway, gateway_worker):
    request_id = agency.post(CREATE, json=medicine_body).get_json()["id"]
    response = agency.post(f"/api/v1/requests/{request_id}/cancel")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    gateway_worker.drain()
    body = agency.get(f"/api/v1/requests/{request_id}").get_json()
    assert [e["status"] for e in body["timeline"]] == ["received", "cancelled"]
    again = agency.post(f"/api/v1/requests/{request_id}/cancel")
    assert (again.status_code, again.get_json()["code"]) == (409, "request_not_cancellable")
    with gateway.db.read() as session:
        assert session.scalar(select(func.count()).select_from(StatusEvent)) == 2
