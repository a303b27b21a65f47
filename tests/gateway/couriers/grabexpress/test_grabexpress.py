"""GrabExpress end to end: the adapter over real HTTP against the simulator (tokens
included), webhooks into the gateway over real HTTP. Each test watches the simulator."""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import select

from gateway.couriers import CourierRejected, CourierTemporaryError
from gateway.couriers.grabexpress.adapter import GrabExpressConfigSchema, GrabExpressCourier
from gateway.couriers.grabexpress.simulator import GrabExpressSimulator, create_simulator_app
from gateway.errors import StartupError
from gateway.models import ProviderEventRecord, ServiceRequest
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.statuses import Status
from gateway.sweep import sweep_once
from gateway.testing import ServerThread, drain, free_port, wait_for_status
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, detail, sim_get, sim_post

CREATE = "/api/v1/services/umkm_pickup/requests"
API = "/grab-express-sandbox"
TOKEN_PATH = "/grabid/v1/oauth2/token"
GRAB_CREDENTIALS = {"client_id": "test-grab-client", "client_secret": "test-grab-secret",
                    "webhook_auth": "test-grab-webhook-auth-0123456789",
                    "webhook_auth_id": "test-grab-webhook-id"}


# -- fixtures: the simulator, and an app whose UMKM parcels go to it, then the own fleet ----
@pytest.fixture
def grab_sim():
    """The GrabExpress simulator on a free port (its API under Grab's sandbox path), its
    clock stepping every 0.2 s."""
    sim = GrabExpressSimulator(step_seconds=0.2, slow_seconds=2.0, prefix=API,
                               **GRAB_CREDENTIALS)
    with ServerThread(create_simulator_app(sim)) as server:
        sim.url = server.url
        sim.start_clock()
        yield sim
        sim.stop_clock()


def grab_entry(sim, **changes) -> dict:
    return {"adapter": "grabexpress", "sandbox": True, "base_url": f"{sim.url}{API}",
            "token_url": f"{sim.url}{TOKEN_PATH}", "timeout_seconds": 1,
            **GRAB_CREDENTIALS, **changes}


@pytest.fixture
def grab_app(make_app, grab_sim, serve_app):
    """An app whose UMKM parcels go to the GrabExpress simulator, then the own fleet, served
    over HTTP so that the simulator's webhooks reach it."""

    def make(entry=None, **overrides):
        config = {
            # No routing limits unless a test sets them: what Grab itself refuses is tested.
            "couriers": {"grab_sandbox": {"limits": {}, **(entry or grab_entry(grab_sim))},
                         "gosend_sandbox": {"enabled": False},
                         "own_fleet": {"enabled": True}},
            "services": {"umkm_pickup": {"couriers": ["grab_sandbox", "own_fleet"]}},
        }
        config.update(overrides)
        return serve_app(make_app(**config), grab_sim, "grab_sandbox")

    return make


# -- helpers -------------------------------------------------------------------------------
def umkm_body(app, order_id="BWM-2026-0042", note=None, **parcel):
    body = copy.deepcopy(app.extensions["gateway"].services["umkm_pickup"].example_request)
    body["order_id"] = order_id
    body["parcel"].update(parcel)
    if note is not None:
        body["dropoffs"][0]["note"] = note
    return body


def submit(app, key, body):
    response = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def calls(sim, method, path):
    return [r for r in sim_get(sim, "/_sim/requests")
            if r["method"] == method and r["path"] == path]


def quotes(sim):
    return calls(sim, "POST", f"{API}/v1/deliveries/quotes")


def token_calls(sim):
    return calls(sim, "POST", TOKEN_PATH)


def creates(sim):
    return calls(sim, "POST", f"{API}/v1/deliveries")


def applied_statuses(body):
    return [e["status"] for e in body["timeline"] if e["applied"]]


def details_of(body):
    return [e["detail"] or "" for e in body["timeline"]]


def assert_failed_over_with_grabs_words(app, key, request_id, sim, words):
    """Grab refused the one create it got, for good: the own fleet has the parcel and the
    timeline keeps Grab's own words."""
    wait_for_status(app, request_id, "booked")
    body = detail(app, key, request_id)
    assert body["provider"] == "own_fleet"
    assert any(d.startswith("grab_sandbox: rejected") and words in d
               for d in details_of(body))
    assert len(creates(sim)) == 1 and bookings(sim) == []


def wait_for_provider(app, key, request_id, provider, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drain(app)
        body = detail(app, key, request_id)
        if body["provider"] == provider:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{request_id} is held by {body['provider']}, not {provider}")


# -- through the gateway -------------------------------------------------------------------
def test_a_parcel_is_booked_at_grab_and_delivered_by_webhooks_with_its_proof(
        grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app))
    wait_for_status(app, request_id, "delivered")
    drain(app)

    (booking,) = bookings(grab_sim)
    assert booking["merchantOrderID"] == f"{request_id}-1"
    assert booking["history"] == ["ALLOCATING", "PENDING_PICKUP", "PICKING_UP",
                                  "PENDING_DROP_OFF", "IN_DELIVERY", "COMPLETED"]
    (create_call,) = creates(grab_sim)
    sent = create_call["json"]
    assert sent["merchantOrderID"] == f"{request_id}-1"
    assert sent["sender"]["phone"] == "6281234567891"
    assert sent["recipient"] == {"firstName": "Dewi Lestari", "phone": "6285234567890",
                                 "smsEnabled": True, "instruction": ""}
    assert sent["packages"][0]["description"] == "Kopi bubuk 1 kg"
    assert sent["packages"][0]["dimensions"]["weight"] == 1200
    assert "cashOnDelivery" not in sent

    (token_call,) = token_calls(grab_sim)
    assert token_call["caller"] == GRAB_CREDENTIALS["client_id"]
    assert GRAB_CREDENTIALS["client_secret"] not in str(sim_get(grab_sim, "/_sim/requests"))

    body = detail(app, key, request_id)
    assert body["provider"] == "grab_sandbox"
    assert body["provider_reference"] == booking["deliveryID"]
    assert applied_statuses(body) == ["received", "dispatching", "booked", "driver_assigned",
                                      "picked_up", "delivered"]
    assert body["proof"]["receiver_name"] == "Dewi Lestari"
    assert f"/{booking['deliveryID']}/dropoff.jpg?expires=" in body["proof"]["photo_url"]
    assert body["proof"]["courier"] == "grab_sandbox"
    deadline = time.monotonic() + 5  # the simulator notes an answer just after it came
    while len(sim_get(grab_sim, "/_sim/webhooks")) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    webhooks = sim_get(grab_sim, "/_sim/webhooks")
    assert len(webhooks) == 6 and {w["answer"] for w in webhooks} == {200}

    # the drop-off photo (signed for a while only) was fetched and kept; the pickup's is not
    # proof of delivery and was not fetched
    fetched = [r["path"] for r in sim_get(grab_sim, "/_sim/requests")
               if r["path"].startswith("/_proof/")]
    assert fetched == [f"/_proof/{booking['deliveryID']}/dropoff.jpg"]
    proof = app.test_client().get(f"/api/v1/requests/{request_id}/proof",
                                  headers=bearer(key)).get_json()
    assert [(i["status"], i["courier"]) for i in proof["images"]] == [("stored", "grab_sandbox")]
    completed = [w["body"] for w in webhooks if w["body"]["status"] == "COMPLETED"]
    assert proof["delivered_at"] == datetime.fromtimestamp(
        completed[0]["timestamp"], UTC).isoformat().replace("+00:00", "Z")


def test_cash_on_delivery_is_sent_as_grabs_cash_payment_with_its_amount(grab_app, grab_sim):
    """Grab collects cash only under its CASH payment method; CASHLESS with an amount is
    refused by the simulator as Grab documents it."""
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    body = {**umkm_body(app, note="[sim:stall]"), "cash_on_delivery": 175000}
    request_id = submit(app, key, body)
    wait_for_status(app, request_id, "booked")
    (create_call,) = creates(grab_sim)
    sent = create_call["json"]
    assert (sent["paymentMethod"], sent["payer"]) == ("CASH", "SENDER")
    assert sent["cashOnDelivery"] == {"amount": 175000}
    assert "codType" not in sent
    quote_call = calls(grab_sim, "POST", f"{API}/v1/deliveries/quotes")
    assert all(c["json"]["paymentMethod"] == "CASH" for c in quote_call)
    assert detail(app, key, request_id)["provider"] == "grab_sandbox"


def test_a_parcel_without_cod_is_cashless(grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    (create_call,) = creates(grab_sim)
    assert create_call["json"]["paymentMethod"] == "CASHLESS"
    assert "cashOnDelivery" not in create_call["json"]


def test_the_simulator_refuses_a_cod_amount_without_the_cash_payment_method(grab_sim):
    """What our old payload sent (an amount under CASHLESS): Grab pairs COD with CASH."""
    token = requests.post(f"{grab_sim.url}{TOKEN_PATH}", timeout=5, json={
        "client_id": GRAB_CREDENTIALS["client_id"],
        "client_secret": GRAB_CREDENTIALS["client_secret"],
        "grant_type": "client_credentials",
        "scope": "grab_express.partner_deliveries"}).json()["access_token"]
    body = {"merchantOrderID": "m-1", "serviceType": "INSTANT", "paymentMethod": "CASHLESS",
            "cashOnDelivery": {"amount": 1000},
            "packages": [{"name": "p", "description": "p", "quantity": 1,
                          "dimensions": {"height": 0, "width": 0, "depth": 0, "weight": 0}}],
            "origin": {"address": "a", "coordinates": {"latitude": -8.2, "longitude": 114.3}},
            "destination": {"address": "b",
                            "coordinates": {"latitude": -8.21, "longitude": 114.31}},
            "sender": {"firstName": "S", "phone": "6281234567891", "smsEnabled": False},
            "recipient": {"firstName": "R", "phone": "6285234567890", "smsEnabled": True}}
    headers = {"Authorization": f"Bearer {token}"}
    answer = requests.post(f"{grab_sim.url}{API}/v1/deliveries", json=body, headers=headers,
                           timeout=5)
    assert (answer.status_code, answer.json()["message"]) == (400, "Invalid payment method")
    for field, value, message in [("payer", "SOMEONE", "Invalid payer value"),
                                  ("codType", "WEEKLY", "Invalid codType")]:
        answer = requests.post(f"{grab_sim.url}{API}/v1/deliveries", headers=headers,
                               json={**body, "paymentMethod": "CASH", field: value}, timeout=5)
        assert (answer.status_code, answer.json()["message"]) == (400, message)
    plus = {**body, "paymentMethod": "CASH",
            "sender": {**body["sender"], "phone": "+6281234567891"}}
    answer = requests.post(f"{grab_sim.url}{API}/v1/deliveries", json=plus, headers=headers,
                           timeout=5)
    assert (answer.status_code, answer.json()["target"]) == (400, "sender")
    assert bookings(grab_sim) == []


def test_the_drivers_notes_go_where_grab_shows_them_to_the_driver(grab_app, grab_sim):
    """Grab documents ``recipient.instruction`` as unused and ``sender.instruction`` as
    shown to the driver at pickup: the drop-off note must reach the driver there."""
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, note="Pagar hijau [sim:stall]"))
    wait_for_status(app, request_id, "booked")
    (booking,) = bookings(grab_sim)
    assert booking["driver_instruction"] == \
        "Jl. Ahmad Yani No. 80, Banyuwangi: Pagar hijau [sim:stall]"
    (create_call,) = creates(grab_sim)
    assert create_call["json"]["recipient"]["instruction"] == ""


def test_cod_where_the_grab_project_has_no_cash_payment_goes_to_another_courier(
        grab_app, grab_sim):
    app = grab_app(grab_entry(grab_sim, cash_on_delivery=False))
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, {**umkm_body(app), "cash_on_delivery": 50000})
    wait_for_status(app, request_id, "booked")
    body = detail(app, key, request_id)
    assert body["provider"] == "own_fleet"
    assert "skipped grab_sandbox: cash on delivery is not enabled for this Grab project" \
        in details_of(body)
    assert sim_get(grab_sim, "/_sim/requests") == [], "Grab is not even asked"


def test_cod_over_the_contracts_cash_limit_goes_to_another_courier(grab_app, grab_sim):
    app = grab_app(grab_entry(grab_sim, max_cash_on_delivery=100000))
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    small = submit(app, key, {**umkm_body(app, "BWM-1", note="[sim:stall]"),
                              "cash_on_delivery": 100000})
    large = submit(app, key, {**umkm_body(app, "BWM-2"), "cash_on_delivery": 100001})
    wait_for_status(app, small, "booked")
    wait_for_status(app, large, "booked")
    assert detail(app, key, small)["provider"] == "grab_sandbox"
    body = detail(app, key, large)
    assert body["provider"] == "own_fleet"
    assert "skipped grab_sandbox: cash on delivery over 100000" in details_of(body)
    assert len(creates(grab_sim)) == 1


def test_cod_grab_refuses_for_its_payment_type_fails_over_with_grabs_words(
        grab_app, grab_sim):
    """The entry believes cash is enabled, Grab's project does not: a refusal for good, not
    a retry, and the next courier takes the parcel."""
    app = grab_app()
    sim_post(grab_sim, "/_sim/config", {"cash_enabled": False})
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, {**umkm_body(app), "cash_on_delivery": 50000})
    assert_failed_over_with_grabs_words(app, key, request_id, grab_sim, "Taxi type ID not found")


def test_an_expired_token_is_refreshed_once_before_the_next_call(grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    sim_post(grab_sim, "/_sim/config", {"token_lifetime_seconds": 1})
    first = submit(app, key, umkm_body(app, "BWM-1", note="[sim:stall]"))
    wait_for_status(app, first, "booked")
    time.sleep(1.1)
    second = submit(app, key, umkm_body(app, "BWM-2", note="[sim:stall]"))
    wait_for_status(app, second, "booked")

    assert len(token_calls(grab_sim)) == 2
    assert sim_get(grab_sim, "/_sim/tokens")["unauthorized_calls"] == 0
    assert len(creates(grab_sim)) == 2 and len(bookings(grab_sim)) == 2


def test_a_token_refused_with_401_is_refreshed_once_and_the_call_sent_once_more(
        grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    first = submit(app, key, umkm_body(app, "BWM-1", note="[sim:stall]"))
    wait_for_status(app, first, "booked")
    sim_post(grab_sim, "/_sim/tokens/expire")  # expired at Grab before its announced time
    second = submit(app, key, umkm_body(app, "BWM-2", note="[sim:stall]"))
    wait_for_status(app, second, "booked")

    tokens = sim_get(grab_sim, "/_sim/tokens")
    assert (tokens["issued"], tokens["unauthorized_calls"]) == (2, 1)
    assert len(token_calls(grab_sim)) == 2
    # The refused call is the second request's quote (asked before booking: gateway.costs)
    assert len(quotes(grab_sim)) == 3, "the refused call is sent once more, not again"
    assert len(creates(grab_sim)) == 2 and len(bookings(grab_sim)) == 2
    assert detail(app, key, second)["provider"] == "grab_sandbox"


def test_a_second_401_after_a_fresh_token_gives_up_on_grab_and_fails_over(grab_app, grab_sim):
    app = grab_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    sim_post(grab_sim, "/_sim/config", {"reject_tokens": True})
    request_id = submit(app, key, umkm_body(app, "BWM-1"))
    body = wait_for_provider(app, key, request_id, "own_fleet")

    assert body["status"] == "booked"
    assert "grab_sandbox: auth (credentials refused)" in details_of(body)
    assert gateway.circuits.state("grab_sandbox") == "open"
    tokens = sim_get(grab_sim, "/_sim/tokens")
    assert (tokens["issued"], tokens["unauthorized_calls"]) == (2, 2)
    # the quote asked before booking met the refusals: no create was sent at all
    assert len(quotes(grab_sim)) == 2 and creates(grab_sim) == [] and bookings(grab_sim) == []

    other = submit(app, key, umkm_body(app, "BWM-2"))
    assert wait_for_provider(app, key, other, "own_fleet")["status"] == "booked"
    assert len(token_calls(grab_sim)) == 2, "an open circuit keeps calls away from Grab"


def test_client_credentials_refused_at_the_token_call_fail_over_without_an_api_call(
        grab_app, grab_sim):
    app = grab_app(grab_entry(grab_sim, client_secret="not-the-secret"))
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app))
    wait_for_provider(app, key, request_id, "own_fleet")
    assert sim_get(grab_sim, "/_sim/tokens")["refused"] == 1
    assert creates(grab_sim) == [] and bookings(grab_sim) == []
    assert app.extensions["gateway"].circuits.state("grab_sandbox") == "open"


def test_a_forged_webhook_is_refused_and_changes_nothing(grab_app, grab_sim):
    app = grab_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    delivery_id = bookings(grab_sim)[0]["deliveryID"]
    forged = {"deliveryID": delivery_id, "merchantOrderID": f"{request_id}-1",
              "status": "COMPLETED", "timestamp": 1700000000,
              "recipient": {"name": "Someone Else"}, "dropoffProofURL": "http://forged.invalid"}
    url = f"{app.server_url}/webhooks/grab_sandbox"
    right_id = {"Authorization-Id": GRAB_CREDENTIALS["webhook_auth_id"]}
    for headers in ({"Authorization": "not-what-we-gave-grab-0123456", **right_id},
                    right_id,
                    {"Authorization": GRAB_CREDENTIALS["webhook_auth"],
                     "Authorization-Id": "another-id"},
                    {"Authorization": GRAB_CREDENTIALS["webhook_auth"]}):
        response = requests.post(url, json=forged, headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json()["code"] == "webhook_rejected"
    drain(app)
    assert detail(app, key, request_id)["status"] == "booked"
    assert detail(app, key, request_id)["proof"] is None
    with gateway.db.read() as session:
        stored = session.scalars(select(ProviderEventRecord.raw_status).where(
            ProviderEventRecord.provider_reference == delivery_id)).all()
    assert "COMPLETED" not in stored

    # The same report with the headers we gave Grab is taken: only the credentials differed.
    genuine = {"Authorization": GRAB_CREDENTIALS["webhook_auth"], **right_id}
    assert requests.post(url, json=forged, headers=genuine, timeout=5).status_code == 200
    wait_for_status(app, request_id, "delivered")


def test_canceled_from_the_details_api_and_cancelled_from_a_webhook_both_end_cancelled(
        grab_app, grab_sim):
    app = grab_app(dispatch={"poll_after_seconds": 1})
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    by_webhook = submit(app, key, umkm_body(app, "BWM-1", note="[sim:stall]"))
    by_polling = submit(app, key, umkm_body(app, "BWM-2",
                                            note="[sim:stall] [sim:drop_webhooks]"))
    for request_id in (by_webhook, by_polling):
        wait_for_status(app, request_id, "booked")
        reference = detail(app, key, request_id)["provider_reference"]
        sim_post(grab_sim, f"/_sim/bookings/{reference}/status", {"status": "CANCELED"})

    wait_for_status(app, by_webhook, "cancelled")
    deadline = time.monotonic() + 20
    while detail(app, key, by_polling)["status"] != "cancelled" \
            and time.monotonic() < deadline:
        with gateway.db.write() as session:  # quiet long enough: due for a poll
            record = session.get(ServiceRequest, by_polling)
            record.updated_at = record.updated_at.replace(year=2020)
        sweep_once(gateway)
        drain(app)
        time.sleep(0.2)

    raw = {request_id: [e["raw_status"] for e in detail(app, key, request_id)["timeline"]
                        if e["status"] == "cancelled" and e["applied"]]
           for request_id in (by_webhook, by_polling)}
    assert raw == {by_webhook: ["CANCELLED"], by_polling: ["CANCELED"]}
    assert {w["body"]["status"] for w in sim_get(grab_sim, "/_sim/webhooks")} == \
        {"ALLOCATING", "CANCELLED"}


def test_cancelling_a_booked_request_cancels_it_at_grab(grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code == 202
    wait_for_status(app, request_id, "cancelled")
    (booking,) = bookings(grab_sim)
    assert booking["status"] == "CANCELED"
    assert calls(grab_sim, "DELETE", f"{API}/v1/deliveries/{booking['deliveryID']}")


def test_a_parcel_over_the_entrys_weight_limit_is_routed_elsewhere_with_the_reason(
        grab_app, grab_sim):
    app = grab_app(grab_entry(grab_sim, limits={"max_weight_grams": 5000}))
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, weight_grams=8000))
    wait_for_status(app, request_id, "booked")
    body = detail(app, key, request_id)
    assert body["provider"] == "own_fleet"
    assert "skipped grab_sandbox: parcel over 5000 g" in details_of(body)
    assert sim_get(grab_sim, "/_sim/requests") == [], "Grab is not even asked"


def test_a_parcel_grab_itself_refuses_is_rejected_and_fails_over_with_grabs_words(
        grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, weight_grams=25000))
    assert_failed_over_with_grabs_words(app, key, request_id, grab_sim,
                                        "Package over weight limit")


def test_an_unknown_create_outcome_is_released_by_merchant_order_id_and_booked_once_more(
        grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    sim_post(grab_sim, "/_sim/faults", {"create": ["timeout"]})
    request_id = submit(app, key, umkm_body(app))
    # The simulator's clock may carry the booking on before we look: anything from booked on.
    wait_for_status(app, request_id, {"booked", "driver_assigned", "picked_up", "delivered"})

    live = [b for b in bookings(grab_sim) if b["status"] != "CANCELED"]
    assert len(live) == 1, "exactly one delivery at Grab that was not released"
    assert calls(grab_sim, "DELETE", f"{API}/v1/merchant/deliveries/{request_id}-1")
    by_reference = {b["merchantOrderID"]: b for b in bookings(grab_sim)}
    assert set(by_reference) == {f"{request_id}-1", f"{request_id}-2"}
    assert by_reference[f"{request_id}-1"]["status"] == "CANCELED"
    assert live[0]["merchantOrderID"] == f"{request_id}-2"
    assert len(creates(grab_sim)) == 2

    wait_for_status(app, request_id, "delivered")
    body = detail(app, key, request_id)
    assert body["provider_reference"] == live[0]["deliveryID"]
    assert [b["status"] for b in bookings(grab_sim)] == ["CANCELED", "COMPLETED"]


def test_cancelling_while_grabs_create_answer_is_unknown_releases_the_merchant_order(
        grab_app, grab_sim):
    app = grab_app(jobs={"intervals": [60]})  # the reconciling retry would come much later
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    sim_post(grab_sim, "/_sim/faults", {"create": ["timeout"]})
    request_id = submit(app, key, umkm_body(app, note="[sim:stall]"))
    drain(app)  # booked at Grab, but the answer was lost: the attempt is unknown
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.get_json()["status"] == "cancelled"
    drain(app)
    assert calls(grab_sim, "DELETE", f"{API}/v1/merchant/deliveries/{request_id}-1")
    assert [b["status"] for b in bookings(grab_sim)] == ["CANCELED"]
    with gateway.db.read() as session:
        assert session.get(ServiceRequest, request_id).pending_job is None


def test_no_driver_at_grab_fails_over_to_the_own_fleet(grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, note="[sim:no_driver]"))
    wait_for_status(app, request_id, "booked")
    body = wait_for_provider(app, key, request_id, "own_fleet")
    assert body["status"] == "booked"
    (booking,) = bookings(grab_sim)
    assert (booking["status"], booking["failed_reason"]) == ("FAILED", "6|Could not find driver")
    assert "grab_sandbox found no driver; trying the next courier" in details_of(body)


def test_a_delivery_grab_fails_for_another_reason_ends_failed(grab_app, grab_sim):
    app = grab_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, umkm_body(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    reference = detail(app, key, request_id)["provider_reference"]
    sim_post(grab_sim, f"/_sim/bookings/{reference}/status", {"status": "FAILED"})
    wait_for_status(app, request_id, "failed")
    assert detail(app, key, request_id)["provider"] == "grab_sandbox"


# -- the adapter alone, against the simulator ------------------------------------------------
def adapter_for(sim, **changes) -> GrabExpressCourier:
    entry = grab_entry(sim, **changes)
    own = GrabExpressConfigSchema().load(
        {k: v for k, v in entry.items() if k not in ("adapter", "sandbox", "timeout_seconds")})
    return GrabExpressCourier("grab_sandbox", {**own, "sandbox": True, "timeout_seconds": 2})


def parcel_order(note="[sim:stall]") -> DeliveryOrder:
    return DeliveryOrder(
        reference="req-1",
        pickup=Place(address="Jl. Kemiren No. 12, Glagah", lat=-8.2163, lng=114.3167,
                     contact=Contact("Pak Slamet", "+6281234567891")),
        dropoffs=(Place(address="Jl. Ahmad Yani No. 80", lat=-8.219, lng=114.369,
                        contact=Contact("Dewi Lestari", "+6285234567890"), note=note),),
        package=Package(description="Paket #req-1", weight_grams=1200))


def test_threads_of_one_process_share_one_token(grab_sim):
    adapter = adapter_for(grab_sim)
    threads = [threading.Thread(target=adapter.health_check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    adapter.quote(parcel_order())
    assert len(token_calls(grab_sim)) == 1


def test_a_quote_is_read_in_rupiah_and_kilometres(grab_sim):
    quote = adapter_for(grab_sim).quote(parcel_order())
    assert quote.courier == "grab_sandbox" and quote.currency == "IDR"
    assert isinstance(quote.price, int) and quote.price > 0
    assert 5 < quote.distance_km < 7


def test_releasing_a_merchant_order_cancels_all_its_deliveries_before_pickup_only(grab_sim):
    adapter = adapter_for(grab_sim)
    order = parcel_order()
    first, second = adapter.book(order, "ref-1"), adapter.book(order, "ref-1")
    assert first.provider_reference != second.provider_reference
    adapter.release_by_reference("ref-1")
    assert {b["status"] for b in bookings(grab_sim)} == {"CANCELED"}
    assert adapter.get_status(first.provider_reference).status == Status.CANCELLED
    assert adapter.get_status(first.provider_reference).raw_status == "CANCELED"
    adapter.release_by_reference("ref-never-booked")  # nothing under it: nothing to release

    picked = adapter.book(order, "ref-2")
    sim_post(grab_sim, f"/_sim/bookings/{picked.provider_reference}/status",
             {"status": "PENDING_DROP_OFF"})
    with pytest.raises(CourierRejected, match="409"):
        adapter.cancel(picked.provider_reference)
    with pytest.raises(CourierRejected, match="409"):
        adapter.release_by_reference("ref-2")
    assert adapter.get_status(picked.provider_reference).status == Status.PICKED_UP


def test_a_token_endpoint_that_cannot_be_reached_is_temporary_even_on_create(grab_sim):
    adapter = adapter_for(grab_sim, token_url=f"http://127.0.0.1:{free_port()}{TOKEN_PATH}")
    with pytest.raises(CourierTemporaryError):
        adapter.book(parcel_order(), "ref-1")
    assert creates(grab_sim) == []


@pytest.mark.parametrize("base_url, token_url, allowed", [
    ("http://127.0.0.1:8182/grab-express-sandbox", "http://127.0.0.1:8182/grabid/v1/oauth2/token",
     True),
    ("http://localhost:8182", "http://localhost:8182/grabid/v1/oauth2/token", True),
    ("https://partner-api.grab.com/grab-express-sandbox",
     "https://partner-api.grab.com/grabid/v1/oauth2/token", True),
    ("https://partner-api.grab.com/grab-express",
     "https://partner-api.grab.com/grabid/v1/oauth2/token", False),
    ("https://partner-api.grab.com/grab-express-sandboxed",
     "https://partner-api.grab.com/grabid/v1/oauth2/token", False),
    ("http://127.0.0.1:8182", "https://tokens.example.com/oauth2/token", False),
])
def test_a_sandbox_entry_reaches_only_a_simulator_or_grabs_sandbox(base_url, token_url,
                                                                    allowed):
    config = {**GrabExpressConfigSchema().load({**GRAB_CREDENTIALS, "base_url": base_url,
                                                "token_url": token_url}), "sandbox": True}
    if allowed:
        GrabExpressCourier("grab_sandbox", config)
    else:
        with pytest.raises(StartupError, match="marked sandbox"):
            GrabExpressCourier("grab_sandbox", config)
    GrabExpressCourier("grab", {**config, "sandbox": False})  # a live entry may go anywhere
