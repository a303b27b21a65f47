"""GO-SEND end to end: the adapter over real HTTP against the simulator, webhooks into the
gateway over real HTTP, callbacks out to an agency's receiver. Each test watches the
simulator."""

from __future__ import annotations

import hashlib
import hmac
import json

import requests
from sqlalchemy import func, select

from gateway.agencies import create_agency, reveal_callback_secret
from gateway.models import ProviderEventRecord, ServiceRequest
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.statuses import Status
from gateway.sweep import sweep_once
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, detail, sim_get

CREATE = "/api/v1/services/medicine_delivery/requests"


def submit(app, key, body, note=None):
    if note is not None:
        body = {**body, "notes_for_courier": note}
    response = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def applied_statuses(body):
    return [e["status"] for e in body["timeline"] if e["applied"]]


def test_a_request_is_booked_at_gosend_delivered_by_webhooks_and_each_status_called_back(
        gosend_app, gateway_gosend, callback_receiver, medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    agency, key = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"],
                                callback_url=callback_receiver.url, key_type="test")
    request_id = submit(app, key, medicine_body)
    wait_for_status(app, request_id, "delivered")
    drain(app)

    (booking,) = bookings(gateway_gosend)
    assert booking["storeOrderId"] == f"{request_id}-1"
    assert booking["history"] == ["confirmed", "allocated", "out_for_pickup", "picked",
                                  "out_for_delivery", "delivered"]
    (create_call,) = [r for r in sim_get(gateway_gosend, "/_sim/requests")
                      if r["method"] == "POST"]
    assert create_call["caller"] == GOSEND_TEST_CREDENTIALS["client_id"]
    route = create_call["json"]["routes"][0]
    assert route["destinationContactName"] == "Siti Aminah"
    assert "3510011203650002" not in json.dumps(create_call["json"])
    assert "Amlodipine" not in json.dumps(create_call["json"])

    body = detail(app, key, request_id)
    assert body["provider"] == "gosend_sandbox"
    assert body["provider_reference"] == booking["orderNo"]
    assert applied_statuses(body) == ["received", "dispatching", "booked", "driver_assigned",
                                      "picked_up", "delivered"]

    secret = reveal_callback_secret(gateway, agency.id)
    calls = callback_receiver.received
    # callbacks may arrive out of order (several callback workers, retries): their
    # `sequence` gives the order of the changes
    statuses = [body["status"] for body in sorted((json.loads(c.body) for c in calls),
                                                  key=lambda body: body["sequence"])]
    assert statuses == ["dispatching", "booked", "driver_assigned", "picked_up", "delivered"]
    for call in calls:
        expected = "sha256=" + hmac.new(secret.encode(), call.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(call.headers["X-Gateway-Signature"], expected)
        assert call.headers["X-Gateway-Event-Id"] == json.loads(call.body)["event_id"]
    # one callback per change, each with its own place in the order
    sequences = [json.loads(c.body)["sequence"] for c in calls]
    assert len(set(sequences)) == len(sequences) == 5


def test_no_driver_at_gosend_fails_over_to_the_own_fleet(gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:no_driver]")
    wait_for_status(app, request_id, "booked")

    def provider():
        drain(app)
        return detail(app, key, request_id)["provider"]

    import time

    deadline = time.monotonic() + 10
    while provider() != "own_fleet" and time.monotonic() < deadline:
        time.sleep(0.1)
    body = detail(app, key, request_id)
    assert body["provider"] == "own_fleet"
    assert body["status"] == "booked"
    (booking,) = bookings(gateway_gosend)
    assert booking["status"] == "no_driver"
    assert any("gosend_sandbox found no driver" in (e["detail"] or "")
               for e in body["timeline"])


def test_a_timeout_after_gosend_committed_does_not_book_twice(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:timeout]")
    wait_for_status(app, request_id, "delivered")
    (booking,) = bookings(gateway_gosend)
    paths = [r["path"] for r in sim_get(gateway_gosend, "/_sim/requests")]
    assert paths.count("/gokilat/v10/booking") == 1
    assert f"/gokilat/v10/booking/storeOrderId/{request_id}-1" in paths
    assert detail(app, key, request_id)["provider_reference"] == booking["orderNo"]


def test_a_5xx_on_create_is_reconciled_then_booked_once(gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    requests.post(f"{gateway_gosend.url}/_sim/faults", json={"create": ["5xx"]}, timeout=5)
    request_id = submit(app, key, medicine_body)
    wait_for_status(app, request_id, "delivered")
    (booking,) = bookings(gateway_gosend)
    assert booking["storeOrderId"] == f"{request_id}-2"
    paths = [r["path"] for r in sim_get(gateway_gosend, "/_sim/requests")]
    assert f"/gokilat/v10/booking/storeOrderId/{request_id}-1" in paths


def test_duplicated_and_reordered_webhooks_leave_a_forward_only_timeline(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    duplicated = submit(app, key, medicine_body, note="[sim:duplicate_webhooks]")
    medicine_body["prescription_id"] = "RX-2"
    reordered = submit(app, key, medicine_body, note="[sim:reorder_webhooks]")
    for request_id in (duplicated, reordered):
        wait_for_status(app, request_id, "delivered")
        body = detail(app, key, request_id)
        ranks = [Status(s).rank for s in applied_statuses(body)]
        assert ranks == sorted(ranks) and len(ranks) == len(set(ranks))
        assert body["status"] == "delivered"
    with gateway.db.read() as session:
        # the webhooks' reports (a status query for the courier's plate is stored as a poll)
        stored = session.scalar(select(func.count()).select_from(ProviderEventRecord)
                                .where(ProviderEventRecord.request_id == duplicated,
                                       ProviderEventRecord.source != "poll"))
    (order_no,) = [b["orderNo"] for b in bookings(gateway_gosend)
                   if b["storeOrderId"] == f"{duplicated}-1"]   # booked together: any order
    sent = [w for w in sim_get(gateway_gosend, "/_sim/webhooks")
            if w["body"]["booking_id"] == order_no]
    assert len(sent) == 12 and stored == 6
    late = [e for e in detail(app, key, reordered)["timeline"] if not e["applied"]]
    assert late, "the reordered run must show events that arrived late and changed nothing"


def test_a_webhook_with_a_wrong_token_is_refused_and_changes_nothing(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:stall]")
    wait_for_status(app, request_id, "booked")
    order_no = bookings(gateway_gosend)[0]["orderNo"]
    forged = {"entity_id": order_no, "booking_id": order_no, "status": "delivered",
              "event_id": "forged-1", "event_date": 1700000000000}
    url = f"{app.server_url}/webhooks/gosend_sandbox"
    for headers in ({"X-Callback-Token": "not-the-token-we-registered"}, {}):
        response = requests.post(url, json=forged, headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json()["code"] == "webhook_rejected"
    drain(app)
    assert detail(app, key, request_id)["status"] == "booked"
    with gateway.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEventRecord)
                              .where(ProviderEventRecord.event_key == "forged-1")) == 0


def test_dropped_webhooks_are_caught_up_by_polling(gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(dispatch={"poll_after_seconds": 1})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:drop_webhooks]")
    wait_for_status(app, request_id, "booked")
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with gateway.db.write() as session:  # quiet long enough: due for a poll
            record = session.get(ServiceRequest, request_id)
            record.updated_at = record.updated_at.replace(year=2020)
        sweep_once(gateway)
        drain(app)
        if detail(app, key, request_id)["status"] == "delivered":
            break
        time.sleep(0.3)
    assert detail(app, key, request_id)["status"] == "delivered"
    assert sim_get(gateway_gosend, "/_sim/webhooks") == []
    polled = [r for r in sim_get(gateway_gosend, "/_sim/requests")
              if r["path"].startswith("/gokilat/v10/booking/orderno/")]
    assert polled
    # the polled booking's proofs.pod photo was fetched before its link expired, and kept
    drain(app)
    proof = app.test_client().get(f"/api/v1/requests/{request_id}/proof",
                                  headers=bearer(key)).get_json()
    assert [(i["status"], i["courier"]) for i in proof["images"]] == [
        ("stored", "gosend_sandbox")]
    assert [r["path"] for r in sim_get(gateway_gosend, "/_sim/requests")
            if r["path"].startswith("/_proof/")] == [
        f"/_proof/{detail(app, key, request_id)['provider_reference']}/pod.jpg"]


def test_cancelling_a_booked_request_cancels_it_at_gosend(gosend_app, gateway_gosend,
                                                          medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:stall]")
    wait_for_status(app, request_id, "booked")
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code == 202
    wait_for_status(app, request_id, "cancelled")
    assert bookings(gateway_gosend)[0]["status"] == "cancelled"


def test_wrong_credentials_take_gosend_out_and_the_own_fleet_takes_over(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(couriers={"gosend_sandbox": {"base_url": gateway_gosend.url,
                                                  **GOSEND_TEST_CREDENTIALS, "pass_key": "wrong"},
                               "own_fleet": {"enabled": True}})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body)
    wait_for_status(app, request_id, "booked")
    assert detail(app, key, request_id)["provider"] == "own_fleet"
    assert gateway.circuits.state("gosend_sandbox") == "open"
    assert bookings(gateway_gosend) == []


def test_gosend_failing_repeatedly_opens_its_circuit_and_traffic_returns_after_cooldown(
        gosend_app, gateway_gosend, medicine_body):
    import time

    app = gosend_app(couriers={"gosend_sandbox": {
        "base_url": gateway_gosend.url, **GOSEND_TEST_CREDENTIALS,
        # a cool-down long enough that a busy machine's next two requests still meet it open
        "circuit": {"failure_threshold": 2, "cooldown_seconds": 8, "window_seconds": 60}},
        "own_fleet": {"enabled": True}}, dispatch={"temporary_tries_per_courier": 1})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    requests.post(f"{gateway_gosend.url}/_sim/faults", json={"create": ["429", "429"]}, timeout=5)

    def send(n):
        request_id = submit(app, key, {**medicine_body, "prescription_id": f"RX-{n}"},
                            note="[sim:stall]")
        wait_for_status(app, request_id, "booked")
        return detail(app, key, request_id)["provider"]

    def creates():
        return [r for r in sim_get(gateway_gosend, "/_sim/requests") if r["method"] == "POST"]

    assert [send(1), send(2)] == ["own_fleet", "own_fleet"]
    assert gateway.circuits.state("gosend_sandbox") == "open"
    assert send(3) == "own_fleet"
    assert len(creates()) == 2, "an open circuit must keep calls away from GO-SEND"
    deadline = time.monotonic() + 15
    while gateway.circuits.state("gosend_sandbox") == "open" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gateway.circuits.state("gosend_sandbox") == "half_open"
    assert send(4) == "gosend_sandbox"
    assert gateway.circuits.state("gosend_sandbox") == "closed"
    assert len(creates()) == 3 and len(bookings(gateway_gosend)) == 1


def test_oversized_and_replayed_webhooks_change_nothing(gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:stall]")
    wait_for_status(app, request_id, "booked")
    order_no = bookings(gateway_gosend)[0]["orderNo"]
    url = f"{app.server_url}/webhooks/gosend_sandbox"
    token = {"X-Callback-Token": GOSEND_TEST_CREDENTIALS["webhook_token"]}

    huge = {"entity_id": order_no, "status": "delivered", "event_id": "huge-1",
            "padding": "x" * 400_000}
    response = requests.post(url, json=huge, headers=token, timeout=10)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")

    picked = {"entity_id": order_no, "status": "picked", "event_id": "replayed-1",
              "event_date": 1700000000000}
    first = requests.post(url, json=picked, headers=token, timeout=5).json()
    again = requests.post(url, json=picked, headers=token, timeout=5).json()
    assert (first, again) == ({"received": 1, "duplicates": 0}, {"received": 0, "duplicates": 1})
    drain(app)
    body = detail(app, key, request_id)
    assert body["status"] == "picked_up"
    assert [e["raw_status"] for e in body["timeline"]].count("picked") == 1
    with gateway.db.read() as session:
        keys = session.scalars(select(ProviderEventRecord.event_key)).all()
    assert "huge-1" not in keys and keys.count("replayed-1") == 1


def test_gosend_gets_both_contacts_as_62_digits_and_refuses_any_other_form(
        gosend_app, gateway_gosend, medicine_body):
    """The puskesmas's pickup contact (a mobile, from services.yaml) and the patient reach
    GO-SEND as ``62...`` with no plus sign; the simulator refuses ``+62...`` and ``08...``
    on its own, as GO-SEND integrators validate them."""
    app = gosend_app()
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body, note="[sim:stall]")
    wait_for_status(app, request_id, "booked")
    (create_call,) = [r for r in sim_get(gateway_gosend, "/_sim/requests")
                      if r["method"] == "POST"]
    route = create_call["json"]["routes"][0]
    assert route["originContactPhone"] == "6281100000001"       # the demo mobile of Sobo
    assert route["destinationContactPhone"] == "6281234567890"

    headers = {"Client-ID": GOSEND_TEST_CREDENTIALS["client_id"],
               "Pass-Key": GOSEND_TEST_CREDENTIALS["pass_key"]}
    for field, phone in [("originContactPhone", "+6281100000001"),
                         ("destinationContactPhone", "081234567890")]:
        answer = requests.post(f"{gateway_gosend.url}/gokilat/v10/booking", headers=headers,
                               json={**create_call["json"], "routes": [
                                   {**route, "storeOrderId": "other-1", field: phone}]},
                               timeout=5)
        assert answer.status_code == 400
        assert field in answer.headers["Error-Message"]
    assert len(bookings(gateway_gosend)) == 1
