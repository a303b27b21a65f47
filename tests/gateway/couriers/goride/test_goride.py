"""GO-JEK rides end to end, on the provisional dialect: the adapter over real HTTP against
its simulator, webhooks into the gateway over real HTTP. Each test watches the simulator."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from marshmallow import ValidationError
from sqlalchemy import func, select

from gateway.couriers import (
    CourierAuthError,
    CourierOutcomeUnknown,
    CourierRejected,
    CourierTemporaryError,
)
from gateway.couriers.goride.adapter import GoRideConfigSchema, GoRideCourier
from gateway.couriers.goride.simulator import GoRideSimulator, create_simulator_app
from gateway.errors import StartupError
from gateway.models import ProviderEventRecord
from gateway.orders import Contact, Place, RideOrder
from gateway.statuses import Status
from gateway.testing import ServerThread, drain, wait_for_status
from tests.conftest import SERVICE_PLUGINS, bearer, new_key
from tests.gateway.couriers.helpers import bookings, detail, sim_get, sim_post

CREATE = "/api/v1/services/tourism_transport/requests"
GORIDE_CREDENTIALS = {"client_id": "test-goride", "pass_key": "test-goride-pass-key",
                      "webhook_token": "test-goride-webhook-token-0123"}
RIDE_STEPS = ["searching", "driver_assigned", "driver_arrived", "on_trip", "completed"]


@pytest.fixture
def goride_sim():
    """The GO-JEK rides simulator on a free port, its clock stepping every 0.2 s."""
    sim = GoRideSimulator(step_seconds=0.2, slow_seconds=2.0, **GORIDE_CREDENTIALS)
    with ServerThread(create_simulator_app(sim)) as server:
        sim.url = server.url
        sim.start_clock()
        yield sim
        sim.stop_clock()


def sandbox_entry(sim, **overrides) -> dict:
    return {"adapter": "goride", "sandbox": True, "base_url": sim.url, "timeout_seconds": 1,
            **GORIDE_CREDENTIALS, "limits": {"max_passengers": 4}, **overrides}


@pytest.fixture
def goride_app(make_app, goride_sim, serve_app):
    """An app whose tourism rides go to the GoRide simulator and nowhere else, served over
    HTTP so that the simulator's webhooks reach it."""

    def make(entry=None, **overrides):
        config = {
            "couriers": {"gosend_sandbox": {"enabled": False}, "own_fleet": {"enabled": False},
                         "goride_sandbox": entry or sandbox_entry(goride_sim)},
            "services": {"tourism_transport": {"couriers": ["goride_sandbox"]}},
        }
        config.update(overrides)
        return serve_app(make_app(plugins=SERVICE_PLUGINS, **config), goride_sim, "goride_sandbox")

    return make


def ride_body(app, **changes) -> dict:
    body = copy.deepcopy(app.extensions["gateway"].services["tourism_transport"].example_request)
    return {**body, **changes}


def submit(app, key, body):
    response = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def calls(sim, method=None, path=None):
    return [r for r in sim_get(sim, "/_sim/requests")
            if (method is None or r["method"] == method) and (path is None or r["path"] == path)]


def applied_statuses(body):
    return [e["status"] for e in body["timeline"] if e["applied"]]


# -- through the gateway -------------------------------------------------------------------
def test_a_ride_is_booked_at_goride_and_completed_by_webhooks(goride_app, goride_sim):
    app = goride_app()
    key = new_key(app, services=["tourism_transport"], key_type="test")
    request_id = submit(app, key, ride_body(app))
    wait_for_status(app, request_id, "delivered")

    (booking,) = bookings(goride_sim)
    assert booking["partnerReference"] == f"{request_id}-1"
    assert booking["history"] == RIDE_STEPS
    (create_call,) = calls(goride_sim, "POST", "/goride/v1/bookings")
    assert create_call["caller"] == GORIDE_CREDENTIALS["client_id"]
    sent = create_call["json"]
    assert (sent["serviceType"], sent["passengers"], sent["scheduledAt"]) == ("GoCar", 2, None)
    assert sent["partnerReference"] == f"{request_id}-1"
    for side in ("pickup", "destination"):
        assert (sent[side]["contactName"], sent[side]["contactPhone"]) == (
            "Anna Schmidt", "6281398765432")
    assert "TRIP-2026-0007" not in json.dumps(sent), "the office's booking number stays here"
    answers = [w["answer"] for w in sim_get(goride_sim, "/_sim/webhooks")]
    assert answers == [200] * len(RIDE_STEPS)

    body = detail(app, key, request_id)
    assert (body["provider"], body["provider_reference"]) == ("goride_sandbox",
                                                              booking["bookingId"])
    assert applied_statuses(body) == ["received", "dispatching", "booked", "driver_assigned",
                                      "picked_up", "delivered"]


def test_a_ride_two_days_ahead_is_booked_with_scheduled_at_and_waits_until_its_time(
        goride_app, goride_sim):
    app = goride_app()
    key = new_key(app, services=["tourism_transport"], key_type="test")
    departure = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    request_id = submit(app, key, ride_body(app, departure_at=departure.isoformat()))
    wait_for_status(app, request_id, "booked")

    (create_call,) = calls(goride_sim, "POST", "/goride/v1/bookings")
    assert create_call["json"]["scheduledAt"] == departure.strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.0)  # five steps of the simulator's clock
    drain(app)
    (booking,) = bookings(goride_sim)
    assert booking["history"] == ["scheduled"]
    assert detail(app, key, request_id)["status"] == "booked"

    assert sim_post(goride_sim, f"/_sim/bookings/{booking['bookingId']}/advance") == {
        "status": "searching"}
    wait_for_status(app, request_id, "delivered")
    assert bookings(goride_sim)[0]["history"] == ["scheduled", *RIDE_STEPS]


def test_a_party_bigger_than_the_vehicle_is_never_sent_to_goride(goride_app, goride_sim):
    app = goride_app(entry=sandbox_entry(goride_sim, service_type="GoRide",
                                         limits={"max_passengers": 1}))
    key = new_key(app, services=["tourism_transport"], key_type="test")
    request_id = submit(app, key, ride_body(app, passengers=2))
    wait_for_status(app, request_id, "failed")

    body = detail(app, key, request_id)
    assert body["failure_code"] == "no_courier_available"
    assert "skipped goride_sandbox: more than 1 passengers" in [
        e["detail"] for e in body["timeline"]]
    assert calls(goride_sim) == []


def test_a_timeout_after_goride_committed_does_not_book_twice(goride_app, goride_sim):
    app = goride_app()
    key = new_key(app, services=["tourism_transport"], key_type="test")
    sim_post(goride_sim, "/_sim/faults", {"create": ["timeout"]})
    request_id = submit(app, key, ride_body(app))
    wait_for_status(app, request_id, "delivered")

    (booking,) = bookings(goride_sim)
    assert len(calls(goride_sim, "POST", "/goride/v1/bookings")) == 1
    assert calls(goride_sim, "GET", f"/goride/v1/bookings/partnerReference/{request_id}-1")
    assert detail(app, key, request_id)["provider_reference"] == booking["bookingId"]


def test_a_forged_goride_webhook_is_refused_and_changes_nothing(goride_app, goride_sim):
    app = goride_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["tourism_transport"], key_type="test")
    sim_post(goride_sim, "/_sim/faults", {"create": ["stall"]})
    request_id = submit(app, key, ride_body(app))
    wait_for_status(app, request_id, "booked")
    booking_id = bookings(goride_sim)[0]["bookingId"]
    forged = {"event_id": "forged-1", "event_date": 1700000000000, "booking_id": booking_id,
              "partner_reference": f"{request_id}-1", "status": "completed",
              "driver_name": "", "vehicle_plate": ""}
    url = f"{app.server_url}/webhooks/goride_sandbox"
    for headers in ({"X-Callback-Token": "not-the-token-we-registered"}, {}):
        response = requests.post(url, json=forged, headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json()["code"] == "webhook_rejected"
    drain(app)
    assert detail(app, key, request_id)["status"] == "booked"
    with gateway.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEventRecord)
                              .where(ProviderEventRecord.event_key == "forged-1")) == 0


def test_cancelling_a_ride_before_pickup_cancels_it_at_goride(goride_app, goride_sim):
    app = goride_app()
    key = new_key(app, services=["tourism_transport"], key_type="test")
    sim_post(goride_sim, "/_sim/faults", {"create": ["stall"]})
    request_id = submit(app, key, ride_body(app))
    wait_for_status(app, request_id, "booked")
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code == 202
    wait_for_status(app, request_id, "cancelled")

    (booking,) = bookings(goride_sim)
    assert booking["history"] == ["searching", "cancelled"]
    (cancel_call,) = calls(goride_sim, "PUT", "/goride/v1/bookings/cancel")
    assert cancel_call["json"] == {"bookingId": booking["bookingId"]}


# -- the adapter against its simulator -----------------------------------------------------
VISITOR = Contact("Anna Schmidt", "+6281398765432")


def ride(passengers=2, note=None, reference="req-1") -> RideOrder:
    return RideOrder(
        reference=reference,
        pickup=Place(address="Jl. Sritanjung, Kepatihan, Banyuwangi", lat=-8.2075,
                     lng=114.3735, contact=VISITOR, note=note),
        dropoff=Place(address="Paltuding, Tamansari, Licin", lat=-8.058, lng=114.242,
                      contact=VISITOR),
        passengers=passengers)


def adapter(sim, **settings) -> GoRideCourier:
    own = GoRideConfigSchema().load({"base_url": sim.url, **GORIDE_CREDENTIALS, **settings})
    return GoRideCourier("goride_sandbox", {**own, "sandbox": True, "timeout_seconds": 5,
                                            "limits": {}})


def test_the_simulator_refuses_more_passengers_than_one_vehicle_seats(goride_sim):
    with pytest.raises(CourierRejected, match="seats at most 4"):
        adapter(goride_sim).book(ride(passengers=5), "req-1-1")
    with pytest.raises(CourierRejected, match="seats at most 1"):
        adapter(goride_sim, service_type="GoRide").book(ride(passengers=2), "req-1-2")
    sim_post(goride_sim, "/_sim/config", {"max_passengers": {"GoRide": 1, "GoCar": 6}})
    booking = adapter(goride_sim).book(ride(passengers=5), "req-1-3")
    assert booking.status == Status.BOOKED and booking.raw_status == "searching"
    assert [b["partnerReference"] for b in bookings(goride_sim)] == ["req-1-3"]


def test_magic_words_in_the_pickup_note_are_faults_named_by_what_to_do_next(goride_sim):
    courier = adapter(goride_sim)
    with pytest.raises(CourierRejected, match="not serviceable"):
        courier.book(ride(note="[sim:reject]"), "req-1-1")
    with pytest.raises(CourierOutcomeUnknown):
        courier.book(ride(note="[sim:5xx]"), "req-1-2")
    with pytest.raises(CourierTemporaryError) as limited:
        courier.book(ride(note="Lobby [sim:429]"), "req-1-3")
    assert limited.value.retry_after == 2
    assert bookings(goride_sim) == []


def test_a_booking_is_found_by_our_reference_and_polled_by_its_id(goride_sim):
    courier = adapter(goride_sim)
    assert courier.find_by_reference("req-1-1") is None
    booking = courier.book(ride(note="[sim:stall]"), "req-1-1")
    assert courier.find_by_reference("req-1-1") == booking
    event = courier.get_status(booking.provider_reference)
    assert (event.provider_reference, event.our_reference, event.status) == (
        booking.provider_reference, "req-1-1", Status.BOOKED)


def test_a_ride_on_trip_can_no_longer_be_cancelled(goride_sim):
    courier = adapter(goride_sim)
    booking = courier.book(ride(note="[sim:stall]"), "req-1-1")
    sim_post(goride_sim, f"/_sim/bookings/{booking.provider_reference}/status",
             {"status": "on_trip"})
    with pytest.raises(CourierRejected, match="cannot be cancelled in status on_trip"):
        courier.cancel(booking.provider_reference)


def test_refused_credentials_say_take_the_courier_out(goride_sim):
    with pytest.raises(CourierAuthError):
        adapter(goride_sim, pass_key="wrong").book(ride(), "req-1-1")
    assert bookings(goride_sim) == []


def test_a_sandbox_entry_must_point_at_this_machine():
    own = GoRideConfigSchema().load({"base_url": "https://rides.example.com",
                                     **GORIDE_CREDENTIALS})
    with pytest.raises(StartupError, match="sandbox"):
        GoRideCourier("goride_sandbox", {**own, "sandbox": True})
    assert GoRideCourier("goride", {**own, "sandbox": False}).base_url == (
        "https://rides.example.com")


@pytest.mark.parametrize("change, field", [({"webhook_token": "short"}, "webhook_token"),
                                           ({"service_type": "GoBluebird"}, "service_type"),
                                           ({"max_passengers": 4}, "max_passengers")])
def test_the_entry_settings_are_checked(change, field):
    with pytest.raises(ValidationError) as caught:
        GoRideConfigSchema().load({"base_url": "http://127.0.0.1:1", **GORIDE_CREDENTIALS,
                                   **change})
    assert field in caught.value.messages


def test_the_entry_defaults_to_gocar_and_the_usual_token_header():
    own = GoRideConfigSchema().load({"base_url": "http://127.0.0.1:1", **GORIDE_CREDENTIALS})
    assert (own["service_type"], own["webhook_header"]) == ("GoCar", "X-Callback-Token")


def test_the_simulator_made_from_an_entry_accepts_that_entry_and_nothing_else():
    entry = {**GoRideConfigSchema().load({"base_url": "http://127.0.0.1:1",
                                          **GORIDE_CREDENTIALS}), "sandbox": True}
    sim = GoRideSimulator.from_config(entry, webhook_url=None, step_seconds=0.2)
    with ServerThread(create_simulator_app(sim)) as server:
        sim.url = server.url
        booking = GoRideCourier("goride_sandbox", {**entry, "base_url": server.url}).book(
            ride(), "req-1-1")
        assert sim.bookings[booking.provider_reference]["status"] == "searching"
        url = f"{server.url}/goride/v1/bookings"
        assert requests.post(url, json={}, timeout=5).status_code == 401
        good = {"Client-ID": entry["client_id"], "Pass-Key": entry["pass_key"]}
        payload = sim.bookings[booking.provider_reference]["payload"]
        for broken in ({"pickup": {**payload["pickup"], "contactPhone": "+6281398765432"}},
                       {"scheduledAt": "next Tuesday"}, {"scheduledAt": "2026-03-02T08:30"},
                       {"passengers": 0}, {"serviceType": "GoBluebird"},
                       {"partnerReference": ""}):
            answer = requests.post(url, json={**payload, **broken}, headers=good, timeout=5)
            assert answer.status_code == 400, broken
            assert answer.headers["Error-Message"]
        assert len(sim.bookings) == 1
