"""The regency's own fleet: a courier whose drivers are staff using the dispatch API."""

from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from gateway.agencies import create_agency
from gateway.fleet import MAX_PIN_FAILURES
from gateway.models import AuditRecord
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"


def fleet_app(make_app):
    return make_app(couriers={"gosend_sandbox": {"enabled": False}, "own_fleet": {}},
                    services={"medicine_delivery": {"couriers": ["own_fleet"]}})


def dispatcher_key(app):
    _agency, key = create_agency(app.extensions["gateway"], "Gancang Aron office",
                                 ["medicine_delivery"], roles=["fleet_dispatch"],
                                 key_type="test")
    return key


def test_staff_take_a_booking_from_the_list_to_the_door(make_app, medicine_body):
    app = fleet_app(make_app)
    client = app.test_client()
    pharmacy, staff = new_key(app, key_type="test"), dispatcher_key(app)
    created = client.post(CREATE, json=medicine_body, headers=bearer(pharmacy)).get_json()
    request_id, pin = created["id"], created["delivery_pin"]
    assert len(pin) == 6 and pin.isdigit()
    wait_for_status(app, request_id, "booked")

    (job,) = client.get("/api/v1/fleet/jobs?state=new", headers=bearer(staff)).get_json()["jobs"]
    assert job["order"]["dropoffs"][0]["name"] == "Siti Aminah"
    assert "3510011203650002" not in json.dumps(job) and "Amlodipine" not in json.dumps(job)

    steps = [("accept", "driver_assigned"), ("pickup", "picked_up"), ("deliver", "delivered")]
    for step, status in steps:
        body = {"accept": {"staff_name": "Bu Ratna"}, "deliver": {"pin": pin}}.get(step)
        response = client.post(f"/api/v1/fleet/jobs/{job['id']}/{step}", json=body,
                               headers=bearer(staff))
        assert response.status_code == 200, response.get_json()
        wait_for_status(app, request_id, status)
    body = client.get(f"/api/v1/requests/{request_id}", headers=bearer(pharmacy)).get_json()
    assert body["provider"] == "own_fleet"
    assert [e["raw_status"] for e in body["timeline"] if e["applied"]][-3:] == [
        "accepted", "picked_up", "delivered"]
    assert body["proof"]["pin_verified"] is True
    assert body["proof"]["delivered_by"] == "Bu Ratna"


def test_the_delivery_pin_is_required_and_five_wrong_ones_lock_the_job(make_app, medicine_body):
    app = fleet_app(make_app)
    client = app.test_client()
    pharmacy, staff = new_key(app, key_type="test"), dispatcher_key(app)
    created = client.post(CREATE, json=medicine_body, headers=bearer(pharmacy)).get_json()
    wait_for_status(app, created["id"], "booked")
    job_id = client.get("/api/v1/fleet/jobs", headers=bearer(staff)).get_json()["jobs"][0]["id"]
    for step in ("accept", "pickup"):
        client.post(f"/api/v1/fleet/jobs/{job_id}/{step}", headers=bearer(staff))
    wrong = str((int(created["delivery_pin"]) + 1) % 10 ** 6).zfill(6)
    missing = client.post(f"/api/v1/fleet/jobs/{job_id}/deliver", headers=bearer(staff))
    assert (missing.status_code, missing.get_json()["code"]) == (422, "wrong_pin")
    for _ in range(4):
        response = client.post(f"/api/v1/fleet/jobs/{job_id}/deliver", json={"pin": wrong},
                               headers=bearer(staff))
        assert response.get_json()["code"] == "wrong_pin"
    locked = client.post(f"/api/v1/fleet/jobs/{job_id}/deliver",
                         json={"pin": created["delivery_pin"]}, headers=bearer(staff))
    assert (locked.status_code, locked.get_json()["code"]) == (409, "pin_locked")
    drain(app)
    body = client.get(f"/api/v1/requests/{created['id']}", headers=bearer(pharmacy)).get_json()
    assert body["status"] == "picked_up"


def test_forty_parallel_wrong_pins_get_no_more_checks_than_allowed(make_app, medicine_body):
    app = make_app(couriers={"gosend_sandbox": {"enabled": False}, "own_fleet": {}},
                   services={"medicine_delivery": {"couriers": ["own_fleet"]}},
                   api={"rate_limits": {"test": {"rate": 100.0, "burst": 500}}})
    client = app.test_client()
    pharmacy, staff = new_key(app, key_type="test"), dispatcher_key(app)
    created = client.post(CREATE, json=medicine_body, headers=bearer(pharmacy)).get_json()
    wait_for_status(app, created["id"], "booked")
    job_id = client.get("/api/v1/fleet/jobs", headers=bearer(staff)).get_json()["jobs"][0]["id"]
    for step in ("accept", "pickup"):
        client.post(f"/api/v1/fleet/jobs/{job_id}/{step}", headers=bearer(staff))
    pin = int(created["delivery_pin"])
    wrong_pins = [str((pin + n) % 10 ** 6).zfill(6) for n in range(1, 41)]
    start = threading.Barrier(len(wrong_pins))
    answers = []

    def deliver(guess):
        guesser = app.test_client()
        start.wait()
        response = guesser.post(f"/api/v1/fleet/jobs/{job_id}/deliver", json={"pin": guess},
                                headers=bearer(staff))
        answers.append((response.status_code, response.get_json()["code"]))

    threads = [threading.Thread(target=deliver, args=(guess,)) for guess in wrong_pins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) <= {(422, "wrong_pin"), (409, "pin_locked")}, answers
    assert answers.count((422, "wrong_pin")) <= MAX_PIN_FAILURES
    with app.extensions["gateway"].db.read() as session:
        checked = session.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.action == "fleet.pin", AuditRecord.outcome == "wrong"))
    assert checked <= MAX_PIN_FAILURES
    right = client.post(f"/api/v1/fleet/jobs/{job_id}/deliver",
                        json={"pin": created["delivery_pin"]}, headers=bearer(staff))
    assert (right.status_code, right.get_json()["code"]) == (409, "pin_locked")
    drain(app)
    body = client.get(f"/api/v1/requests/{created['id']}", headers=bearer(pharmacy)).get_json()
    assert body["status"] == "picked_up"


def test_steps_out_of_order_are_409_and_agencies_without_the_role_are_403(
        make_app, medicine_body):
    app = fleet_app(make_app)
    client = app.test_client()
    pharmacy, staff = new_key(app, key_type="test"), dispatcher_key(app)
    request_id = client.post(CREATE, json=medicine_body, headers=bearer(pharmacy)
                             ).get_json()["id"]
    wait_for_status(app, request_id, "booked")
    job_id = client.get("/api/v1/fleet/jobs", headers=bearer(staff)).get_json()["jobs"][0]["id"]
    early = client.post(f"/api/v1/fleet/jobs/{job_id}/deliver", headers=bearer(staff))
    assert (early.status_code, early.get_json()["code"]) == (409, "fleet_job_state")
    denied = client.get("/api/v1/fleet/jobs", headers=bearer(pharmacy))
    assert (denied.status_code, denied.get_json()["code"]) == (403, "forbidden")
    assert client.post(f"/api/v1/fleet/jobs/{job_id}/accept",
                       headers=bearer(pharmacy)).status_code == 403
    drain(app)


def test_cold_chain_medicine_goes_to_the_own_fleet_not_gosend(make_app, medicine_body):
    app = make_app(couriers={"gosend_sandbox": {"base_url": "http://127.0.0.1:9",
                                                "client_id": "x", "pass_key": "y",
                                                "webhook_token": "z" * 16},
                             "own_fleet": {}},
                   services={"medicine_delivery": {"couriers": ["gosend_sandbox",
                                                                "own_fleet"]}})
    medicine_body["cold_chain"] = True
    key = new_key(app, key_type="test")
    request_id = app.test_client().post(CREATE, json=medicine_body, headers=bearer(key)
                                        ).get_json()["id"]
    wait_for_status(app, request_id, "booked")
    body = app.test_client().get(f"/api/v1/requests/{request_id}", headers=bearer(key)
                                 ).get_json()
    assert body["provider"] == "own_fleet"
