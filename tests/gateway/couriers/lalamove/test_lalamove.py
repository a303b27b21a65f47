"""Lalamove end to end: the adapter over real HTTP against the simulator (which recomputes every
signature on its own), webhooks into the gateway over real HTTP. Each test watches the
simulator."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid

import pytest
import requests
from sqlalchemy import func, select

from gateway.couriers import CourierOutcomeUnknown, CourierRejected, CourierTemporaryError
from gateway.couriers.lalamove import mapping
from gateway.couriers.lalamove.adapter import LalamoveConfigSchema, LalamoveCourier
from gateway.couriers.lalamove.simulator import LIFECYCLE, LalamoveSimulator, create_simulator_app
from gateway.errors import StartupError
from gateway.models import CourierAttempt, ProviderEventRecord
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.simulators.engine import DRIVERS
from gateway.statuses import Status
from gateway.testing import ServerThread, drain, wait_for_status
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, detail, sim_get

CREDENTIALS = {"api_key": "pk_test_engine", "api_secret": "sk_test_engine-secret-0123456789"}
CREATE = "/api/v1/services/umkm_pickup/requests"
WEBHOOK_PATH = "/webhooks/lalamove_sandbox"
SECOND_DROPOFF = {"name": "Siti Aminah", "phone": "+6281234567890",
                  "address": "Jl. Brawijaya No. 3, Banyuwangi",
                  "location": {"lat": -8.2301, "lng": 114.3602}}
ORDER = DeliveryOrder(
    reference="req-1",
    pickup=Place(address="Jl. Kemiren No. 12, Glagah", lat=-8.2163, lng=114.3167,
                 contact=Contact("Pak Slamet", "+6281234567891")),
    dropoffs=(Place(address="Jl. Ahmad Yani No. 80, Banyuwangi", lat=-8.219, lng=114.369,
                    contact=Contact("Dewi Lestari", "+6285234567890")),),
    package=Package(description="Kopi bubuk 1 kg", weight_grams=1200))


# -- fixtures: the simulator on a free port, an app served over HTTP that routes to it --------
@pytest.fixture
def lalamove_sim():
    """The Lalamove simulator on a free port, its clock stepping every 0.2 s."""
    sim = LalamoveSimulator(step_seconds=0.2, slow_seconds=2.0, **CREDENTIALS)
    with ServerThread(create_simulator_app(sim)) as server:
        sim.url = server.url
        sim.start_clock()
        yield sim
        sim.stop_clock()


@pytest.fixture
def lalamove_app(make_app, lalamove_sim, serve_app):
    """An app whose UMKM parcels go to the Lalamove simulator, then the own fleet, served over
    HTTP so that the simulator's webhooks reach it."""

    def make(**overrides):
        config = {
            "couriers": {"lalamove_sandbox": {"adapter": "lalamove", "sandbox": True,
                                              "base_url": lalamove_sim.url,
                                              "timeout_seconds": 1, **CREDENTIALS},
                         "gosend_sandbox": {"enabled": False},
                         "goride_sandbox": {"enabled": False},
                         "grab_sandbox": {"enabled": False},
                         "shuttle": {"enabled": False},
                         "own_fleet": {"enabled": True}},
            "services": {"umkm_pickup": {"couriers": ["lalamove_sandbox", "own_fleet"]}},
        }
        config.update(overrides)
        return serve_app(make_app(**config), lalamove_sim, "lalamove_sandbox")

    return make


# -- helpers ---------------------------------------------------------------------------------
def parcel(app, note=None, order_id="BWM-2026-0042") -> dict:
    """The service's own example, with a second drop-off (multi-drop)."""
    body = copy.deepcopy(app.extensions["gateway"].services["umkm_pickup"].example_request)
    body["order_id"] = order_id
    body["dropoffs"].append(dict(SECOND_DROPOFF))
    if note is not None:
        body["dropoffs"][0]["note"] = note
    return body


def submit(app, key, body) -> str:
    response = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def calls(sim, method, path) -> list[dict]:
    return [r for r in sim_get(sim, "/_sim/requests")
            if r["method"] == method and r["path"] == path]


def applied_statuses(body) -> list[str]:
    return [e["status"] for e in body["timeline"] if e["applied"]]


def adapter(sim, **changes) -> LalamoveCourier:
    config = LalamoveConfigSchema().load({"base_url": sim.url, **CREDENTIALS, **changes})
    return LalamoveCourier("lalamove_sandbox", {**config, "sandbox": True,
                                                "timeout_seconds": 1})


def signed_webhook(data: dict, *, secret=CREDENTIALS["api_secret"],
                   api_key=CREDENTIALS["api_key"], event_type="ORDER_STATUS_CHANGED",
                   event_id=None, timestamp=None, path=WEBHOOK_PATH) -> bytes:
    """A webhook body signed as Lalamove signs it (computed here, not with the adapter)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    data_text = json.dumps(data, separators=(",", ":"))
    signature = hmac.new(secret.encode(),
                         f"{timestamp}\r\nPOST\r\n{path}\r\n\r\n{data_text}".encode(),
                         hashlib.sha256).hexdigest()
    head = json.dumps({"apiKey": api_key, "timestamp": timestamp, "signature": signature,
                       "eventId": event_id or str(uuid.uuid4()), "eventType": event_type},
                      separators=(",", ":"))
    return (head[:-1] + ',"data":' + data_text + "}").encode()


def wait_until(check, timeout=10.0):
    """Poll ``check`` until it is true. :raises AssertionError: after ``timeout`` seconds"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


# -- signatures --------------------------------------------------------------------------------
def test_a_request_the_simulator_verifies_independently_is_accepted_and_a_tampered_one_refused(
        lalamove_sim):
    url = f"{lalamove_sim.url}{mapping.QUOTATIONS_PATH}"
    body = mapping.encode(mapping.quotation_payload(ORDER))

    def headers(**changes):
        args = {"api_key": CREDENTIALS["api_key"], "secret": CREDENTIALS["api_secret"],
                "market": "ID", "method": "POST", "path": mapping.QUOTATIONS_PATH,
                "body_text": body, "timestamp_ms": int(time.time() * 1000),
                "request_id": str(uuid.uuid4()), **changes}
        return mapping.request_headers(**args)

    accepted = requests.post(url, data=body.encode(), headers=headers(), timeout=5)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["data"]["quotationId"]

    tampered = body.replace("MOTORCYCLE", "VAN")
    assert tampered != body
    refusals = [
        requests.post(url, data=tampered.encode(), headers=headers(), timeout=5),
        requests.post(url, data=body.encode(), timeout=5,
                      headers=headers(secret="sk_test_not-the-shared-secret")),
        requests.post(url, data=body.encode(), timeout=5,
                      headers=headers(timestamp_ms=int(time.time() * 1000) - 3_600_000)),
        requests.post(url, data=body.encode(), timeout=5,
                      headers=headers(path="/v3/orders")),
        requests.post(url, data=body.encode(), timeout=5,
                      headers={"Market": "ID", "Content-Type": "application/json"}),
    ]
    for response in refusals:
        assert response.status_code == 401
        assert response.json()["errors"][0]["id"] == "ERR_UNAUTHORIZED"
    wrong_market = requests.post(url, data=body.encode(), headers=headers(market="MY"),
                                 timeout=5)
    assert wrong_market.status_code == 422
    assert wrong_market.json()["errors"][0]["id"] == "ERR_INVALID_MARKET"

    verdicts = sim_get(lalamove_sim, "/_sim/signatures")
    assert [v["accepted"] for v in verdicts] == [True] + [False] * 6
    assert [v["reason"] for v in verdicts[1:]] == [
        "signature mismatch", "signature mismatch", "timestamp outside the tolerance window",
        "signature mismatch", "missing or malformed Authorization", "wrong market"]
    assert len(lalamove_sim.quotations) == 1, "a refused call must create nothing"


def test_a_sandbox_entry_reaches_only_a_simulator_or_lalamoves_sandbox():
    for url in ("http://127.0.0.1:8183", "https://rest.sandbox.lalamove.com"):
        LalamoveCourier("lalamove_sandbox", {**LalamoveConfigSchema().load(
            {"base_url": url, **CREDENTIALS}), "sandbox": True})
    live = LalamoveConfigSchema().load({"base_url": "https://rest.lalamove.com", **CREDENTIALS})
    with pytest.raises(StartupError, match="marked sandbox"):
        LalamoveCourier("lalamove_sandbox", {**live, "sandbox": True})
    assert LalamoveCourier("lalamove", {**live, "sandbox": False}).base_url == (
        "https://rest.lalamove.com")


def test_cash_on_delivery_and_more_than_15_dropoffs_are_not_offered(lalamove_sim):
    courier = adapter(lalamove_sim)
    cod = DeliveryOrder(reference="r", pickup=ORDER.pickup, dropoffs=ORDER.dropoffs,
                        package=ORDER.package, cash_on_delivery=50000,
                        requirements=frozenset({"cash_on_delivery"}))
    assert courier.refusal(cod) == "does not support cash on delivery"
    many = DeliveryOrder(reference="r", pickup=ORDER.pickup, dropoffs=ORDER.dropoffs * 16,
                         package=ORDER.package, requirements=frozenset({"multi_drop"}))
    assert courier.refusal(many) == "more than 15 drop-offs"
    assert courier.refusal(ORDER) is None


# -- booking and tracking ------------------------------------------------------------------------
def test_a_multi_drop_parcel_is_booked_at_lalamove_and_delivered_by_signed_webhooks(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app))
    wait_for_status(app, request_id, "delivered")
    drain(app)

    (booking,) = bookings(lalamove_sim)
    order_id = booking["orderId"]
    assert len(order_id) == 19 and order_id.isdigit()
    assert booking["history"] == LIFECYCLE
    assert booking["client_reference"] == f"{request_id}-1"
    assert [s["name"] for s in booking["stops"]] == ["Pak Slamet", "Dewi Lestari",
                                                     "Siti Aminah"]

    (quotation_call,) = calls(lalamove_sim, "POST", "/v3/quotations")
    (order_call,) = calls(lalamove_sim, "POST", "/v3/orders")
    assert [s["coordinates"] for s in quotation_call["json"]["data"]["stops"]] == [
        {"lat": "-8.216300", "lng": "114.316700"}, {"lat": "-8.219000", "lng": "114.369000"},
        {"lat": "-8.230100", "lng": "114.360200"}]
    order = order_call["json"]["data"]
    assert order["metadata"] == {"client_reference": f"{request_id}-1"}
    assert len(order["recipients"]) == 2

    verdicts = sim_get(lalamove_sim, "/_sim/signatures")
    assert verdicts and all(v["accepted"] for v in verdicts)
    request_ids = [v["request_id"] for v in verdicts]
    assert all(uuid.UUID(r).version == 4 for r in request_ids)
    assert len(set(request_ids)) == len(request_ids)

    body = detail(app, key, request_id)
    assert (body["provider"], body["provider_reference"]) == ("lalamove_sandbox", order_id)
    assert applied_statuses(body) == ["received", "dispatching", "booked", "driver_assigned",
                                      "picked_up", "delivered"]
    assert body["proof"]["photo_url"].startswith(f"{lalamove_sim.url}/_proof/{order_id}/")
    assert len(body["proof"]["photo_urls"]) == 2

    sent = sim_get(lalamove_sim, "/_sim/webhooks")
    assert [w["body"]["eventType"] for w in sent] == ["ORDER_CREATED"] + [
        "ORDER_STATUS_CHANGED"] * 3 + ["POD_STATUS_CHANGED"]
    assert all(w["answer"] == 200 for w in sent)


def test_a_quotation_that_expires_before_the_order_is_never_ordered_with(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    requests.post(f"{lalamove_sim.url}/_sim/config", json={"quotation_lifetimes": [0]},
                  timeout=5)
    request_id = submit(app, key, parcel(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")

    quotation_calls = calls(lalamove_sim, "POST", "/v3/quotations")
    order_calls = calls(lalamove_sim, "POST", "/v3/orders")
    assert len(quotation_calls) == 2, "the expiring quotation must be replaced"
    assert len(order_calls) == 1
    stale, fresh = sorted(lalamove_sim.quotations.values(), key=lambda q: q["expires_at"])
    assert order_calls[0]["json"]["data"]["quotationId"] == fresh["quotationId"]
    assert not stale["used"]
    (booking,) = bookings(lalamove_sim)
    assert booking["quotationId"] == fresh["quotationId"]
    assert detail(app, key, request_id)["provider_reference"] == booking["orderId"]


def test_an_order_refused_for_a_stale_quotation_is_placed_once_with_a_fresh_one(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    requests.post(f"{lalamove_sim.url}/_sim/faults", json={"create": ["expire_quotation"]},
                  timeout=5)
    request_id = submit(app, key, parcel(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")

    assert len(calls(lalamove_sim, "POST", "/v3/quotations")) == 2
    first, second = [c["json"]["data"]["quotationId"]
                     for c in calls(lalamove_sim, "POST", "/v3/orders")]
    assert first != second
    (booking,) = bookings(lalamove_sim)
    assert booking["quotationId"] == second


def test_a_replaced_order_moves_the_booking_to_its_new_id_and_is_delivered(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:replace]"))
    wait_for_status(app, request_id, "delivered")
    drain(app)

    old, new = bookings(lalamove_sim)
    assert old["replaced_by"] == new["orderId"] and new["replaces"] == old["orderId"]
    assert old["status"] == "ON_GOING" and new["status"] == "COMPLETED"
    body = detail(app, key, request_id)
    assert body["provider_reference"] == new["orderId"]
    assert body["status"] == "delivered"
    assert applied_statuses(body) == ["received", "dispatching", "booked", "driver_assigned",
                                      "picked_up", "delivered"]
    assert any(f"replaced booking {old['orderId']} by {new['orderId']}" in (e["detail"] or "")
               for e in body["timeline"])
    assert "ORDER_REPLACED" in [w["body"]["eventType"]
                                for w in sim_get(lalamove_sim, "/_sim/webhooks")]
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        (attempt,) = session.scalars(select(CourierAttempt).where(
            CourierAttempt.request_id == request_id)).all()
        assert attempt.provider_reference == new["orderId"]


def test_no_driver_at_lalamove_fails_over_to_the_own_fleet(lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:no_driver]"))
    wait_for_status(app, request_id, "booked")

    def provider():
        drain(app)
        return detail(app, key, request_id)["provider"]

    wait_until(lambda: provider() == "own_fleet")
    body = detail(app, key, request_id)
    assert body["status"] == "booked"
    (booking,) = bookings(lalamove_sim)
    assert booking["status"] == "EXPIRED"
    assert any("lalamove_sandbox found no driver" in (e["detail"] or "")
               for e in body["timeline"])


# -- cancelling ----------------------------------------------------------------------------------
def test_cancelling_while_lalamove_looks_for_a_driver_cancels_the_order(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code == 202
    wait_for_status(app, request_id, "cancelled")
    assert bookings(lalamove_sim)[0]["status"] == "CANCELED"


def test_a_cancel_after_the_driver_is_assigned_is_refused_and_the_order_goes_on(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    order_id = bookings(lalamove_sim)[0]["orderId"]
    requests.post(f"{lalamove_sim.url}/_sim/bookings/{order_id}/status",
                  json={"status": "ON_GOING"}, timeout=5)
    wait_for_status(app, request_id, "driver_assigned")

    with pytest.raises(CourierRejected, match="ERR_CANCELLATION_FORBIDDEN"):
        app.extensions["gateway"].couriers["lalamove_sandbox"].cancel(order_id)

    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code == 202
    drain(app)
    deletes = calls(lalamove_sim, "DELETE", f"/v3/orders/{order_id}")
    assert len(deletes) >= 2, "the cancel job asked Lalamove"
    assert bookings(lalamove_sim)[0]["status"] == "ON_GOING"
    body = detail(app, key, request_id)
    assert body["status"] != "cancelled", "Lalamove refused: the order was not cancelled"
    assert not any(e["status"] == "cancelled" for e in body["timeline"] if e["applied"])


def test_a_refused_cancel_is_noted_and_the_request_follows_the_delivery_to_the_end(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    order_id = bookings(lalamove_sim)[0]["orderId"]
    set_status = f"{lalamove_sim.url}/_sim/bookings/{order_id}/status"
    requests.post(set_status, json={"status": "ON_GOING"}, timeout=5)
    wait_for_status(app, request_id, "driver_assigned")
    app.test_client().post(f"/api/v1/requests/{request_id}/cancel", headers=bearer(key))
    drain(app)
    assert len(calls(lalamove_sim, "DELETE", f"/v3/orders/{order_id}")) == 1
    body = detail(app, key, request_id)
    assert body["status"] == "driver_assigned"
    assert any("ERR_CANCELLATION_FORBIDDEN" in (e["detail"] or "") for e in body["timeline"])
    for status in ("PICKED_UP", "COMPLETED"):
        requests.post(set_status, json={"status": status}, timeout=5)
    wait_for_status(app, request_id, "delivered", timeout=5)


def test_a_lost_order_answer_is_adopted_from_lalamoves_report_and_booked_once(
        lalamove_app, lalamove_sim):
    # Retries wait (no scheduler here), so the report is applied before dispatch runs again.
    app = lalamove_app(jobs={"intervals": [30, 30], "job_timeout": 30})
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:timeout]"))

    def provider():
        drain(app)
        return detail(app, key, request_id)["provider"]

    wait_until(lambda: provider() == "lalamove_sandbox", timeout=5)
    wait_for_status(app, request_id, "delivered")
    (booking,) = bookings(lalamove_sim)
    body = detail(app, key, request_id)
    assert body["provider_reference"] == booking["orderId"]
    assert len(calls(lalamove_sim, "POST", "/v3/orders")) == 1
    assert any("found by its report" in (e["detail"] or "") for e in body["timeline"])


def test_cancelling_during_a_lost_order_answer_cancels_the_order_once_it_is_reported(
        lalamove_app, lalamove_sim):
    app = lalamove_app(jobs={"intervals": [30, 30], "job_timeout": 30})
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    # The order's first report is held back (reorder) until a second one is due.
    request_id = submit(app, key, parcel(
        app, note="[sim:timeout] [sim:stall] [sim:reorder_webhooks]"))
    drain(app)
    (booking,) = bookings(lalamove_sim)
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.get_json()["status"] == "cancelled"
    drain(app)
    requests.post(f"{lalamove_sim.url}/_sim/bookings/{booking['orderId']}/status",
                  json={"status": "ASSIGNING_DRIVER"}, timeout=5)  # releases the held report

    def cancelled_at_lalamove():
        drain(app)
        return bookings(lalamove_sim)[0]["status"] == "CANCELED"

    wait_until(cancelled_at_lalamove, timeout=5)
    body = detail(app, key, request_id)
    assert (body["status"], body["provider_reference"]) == ("cancelled", booking["orderId"])


# -- webhooks ------------------------------------------------------------------------------------
def test_a_webhook_that_fails_verification_is_refused_and_changes_nothing(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:stall]"))
    wait_for_status(app, request_id, "booked")
    order_id = bookings(lalamove_sim)[0]["orderId"]
    completed = {"order": {"orderId": order_id, "status": "COMPLETED"}}
    url = f"{app.server_url}{WEBHOOK_PATH}"
    forged = {
        "wrong secret": signed_webhook(completed, secret="sk_test_guess", event_id="forged-1"),
        "wrong key": signed_webhook(completed, api_key="pk_test_other", event_id="forged-2"),
        "older than the retry window": signed_webhook(
            completed, timestamp=int(time.time()) - 27 * 3600, event_id="forged-3"),
        "other path": signed_webhook(completed, path="/webhooks/elsewhere",
                                     event_id="forged-4"),
        "data changed after signing": signed_webhook(completed, event_id="forged-5").replace(
            b'"COMPLETED"', b'"CANCELED"'),
        "unsigned": json.dumps({"apiKey": CREDENTIALS["api_key"], "timestamp": int(time.time()),
                                "eventId": "forged-6", "eventType": "ORDER_STATUS_CHANGED",
                                "data": completed}).encode(),
    }
    for why, raw in forged.items():
        response = requests.post(url, data=raw, timeout=5,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 401, why
        assert response.json()["code"] == "webhook_rejected", why
    drain(app)
    assert detail(app, key, request_id)["status"] == "booked"
    with gateway.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEventRecord)
                              .where(ProviderEventRecord.event_key.like("forged-%"))) == 0

    # The same report, signed with the shared secret, is taken.
    genuine = signed_webhook({"order": {"orderId": order_id, "status": "ON_GOING"}},
                             event_id="genuine-1")
    assert requests.post(url, data=genuine, timeout=5).status_code == 200
    wait_for_status(app, request_id, "driver_assigned")


def test_a_lost_order_answer_is_an_unknown_outcome_and_the_webhook_names_our_reference(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    gateway = app.extensions["gateway"]
    service = gateway.services["umkm_pickup"]
    order = service.build_order(service.validate(parcel(app, note="[sim:timeout]"), {}), {},
                                reference="req-lost")
    with pytest.raises(CourierOutcomeUnknown):
        gateway.couriers["lalamove_sandbox"].book(order, "req-lost-1")
    assert len(calls(lalamove_sim, "POST", "/v3/orders")) == 1

    def reported():
        with gateway.db.read() as session:
            # the first report (later ones may be stored by now too)
            return session.scalar(select(ProviderEventRecord).where(
                ProviderEventRecord.our_reference == "req-lost-1")
                .order_by(ProviderEventRecord.id).limit(1))

    wait_until(lambda: reported() is not None)
    event = reported()
    (booking,) = bookings(lalamove_sim)
    assert (event.raw_status, event.provider_reference) == ("ORDER_CREATED", booking["orderId"])


def test_a_quotation_failure_is_temporary_and_orders_nothing(lalamove_sim):
    requests.post(f"{lalamove_sim.url}/_sim/config", json={"quotation_faults": ["5xx"]},
                  timeout=5)
    with pytest.raises(CourierTemporaryError):
        adapter(lalamove_sim).book(ORDER, "req-2-1")
    assert calls(lalamove_sim, "POST", "/v3/orders") == []
    booking = adapter(lalamove_sim).book(ORDER, "req-2-2")
    assert booking.status == Status.BOOKED
    assert [b["client_reference"] for b in bookings(lalamove_sim)] == ["req-2-2"]


def test_polling_reads_the_order_and_a_quote_reads_the_quotation(lalamove_sim):
    courier = adapter(lalamove_sim)
    quote = courier.quote(ORDER)
    assert quote.serviceable and quote.price > 0 and quote.currency == "IDR"
    booking = courier.book(ORDER, "req-3-1")
    event = courier.get_status(booking.provider_reference)
    assert (event.provider_reference, event.our_reference) == (
        booking.provider_reference, "req-3-1")
    assert event.raw_status in LIFECYCLE
    courier.health_check()


def test_polling_an_order_with_a_driver_reads_the_drivers_name_and_plate(lalamove_sim):
    """Order details name only ``driverId``; the driver's own call gives name and plate
    (courier reference section 4): the simulator answers both, and the report carries them."""
    lalamove_sim.stop_clock()
    courier = adapter(lalamove_sim)
    booking = courier.book(ORDER, "req-4-1")
    assert courier.get_status(booking.provider_reference).courier_name is None
    assert calls(lalamove_sim, "GET", f"/v3/orders/{booking.provider_reference}/drivers/"
                                      "1000") == []
    requests.post(f"{lalamove_sim.url}/_sim/bookings/{booking.provider_reference}/status",
                  json={"status": "ON_GOING"}, timeout=5)
    (held,) = bookings(lalamove_sim)
    event = courier.get_status(booking.provider_reference)
    name, _phone, plate = next(d for d in DRIVERS if d[0] == held["driver"][0])
    assert (event.courier_name, event.vehicle_plate) == (name, plate)
    assert any(c["path"].startswith(f"/v3/orders/{booking.provider_reference}/drivers/")
               for c in sim_get(lalamove_sim, "/_sim/requests"))


def test_a_driver_lookup_that_fails_costs_only_the_drivers_details():
    assert mapping.parse_driver({"errors": [{"id": "ERR_DRIVER_NOT_FOUND"}]}) in (
        {}, {"courier_name": None, "vehicle_plate": None})
    assert mapping.driver_of({"data": {"orderId": "1", "driverId": ""}}) is None
    assert mapping.driver_of({"data": {"orderId": "1", "driverId": "1002"}}) == "1002"
    assert mapping.driver_path("1 2", "a/b") == "/v3/orders/1%202/drivers/a%2Fb"


# -- phone numbers -------------------------------------------------------------------------------
def signed_post(sim, path, payload) -> requests.Response:
    body = mapping.encode(payload)
    return requests.post(f"{sim.url}{path}", data=body.encode(), timeout=5,
                         headers=mapping.request_headers(
                             api_key=CREDENTIALS["api_key"], secret=CREDENTIALS["api_secret"],
                             market="ID", method="POST", path=path, body_text=body,
                             timestamp_ms=int(time.time() * 1000),
                             request_id=str(uuid.uuid4())))


def test_lalamove_is_sent_phones_in_e164_with_the_plus_and_refuses_any_other_form(
        lalamove_sim):
    """``POST /v3/orders`` takes E.164 phones (``ERR_INVALID_PHONE_NUMBER`` otherwise): the
    simulator checks it on its own, and the adapter sends that form."""
    quotation = signed_post(lalamove_sim, mapping.QUOTATIONS_PATH,
                            mapping.quotation_payload(ORDER)).json()["data"]
    pickup, dropoff = (s["stopId"] for s in quotation["stops"])
    for phone in ("6281234567891", "081234567891"):
        refused = signed_post(lalamove_sim, mapping.ORDERS_PATH, {"data": {
            "quotationId": quotation["quotationId"],
            "sender": {"stopId": pickup, "name": "Pak Slamet", "phone": phone},
            "recipients": [{"stopId": dropoff, "name": "Dewi", "phone": "+6285234567890"}]}})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["id"] == "ERR_INVALID_PHONE_NUMBER"
    assert bookings(lalamove_sim) == []

    adapter(lalamove_sim).book(ORDER, "req-9-1")
    assert len(bookings(lalamove_sim)) == 1
    orders = [r for r in sim_get(lalamove_sim, "/_sim/requests")
              if r["method"] == "POST" and r["path"] == mapping.ORDERS_PATH]
    data = orders[-1]["json"]["data"]
    assert data["sender"]["phone"] == "+6281234567891"
    assert [r["phone"] for r in data["recipients"]] == ["+6285234567890"]
