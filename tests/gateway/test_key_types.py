"""Test keys and live keys are two worlds, even inside one agency.

Everything a test key made is invisible to the agency's live keys, and back: reading,
listing, cancelling and the service views answer 404 exactly as for a missing id; an
Idempotency-Key, an active reference and a limited resource (shuttle seats) are counted per
key type; and a test key never reaches the real world: in ``mode: live`` its requests go to
sandbox couriers only, and an own-fleet booking it makes is on a sandbox dispatch list that
the real staff (live keys) and the live console board never see.
"""

from __future__ import annotations

import json

import pytest
import requests

from gateway.agencies import create_agency, issue_key
from gateway.couriers.gosend.simulator import GoSendSimulator, create_simulator_app
from gateway.models import ServiceRequest
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import ServerThread, drain, wait_for_status
from tests.conftest import bearer
from tests.console.conftest import sign_in

CREATE = "/api/v1/services/medicine_delivery/requests"
LIVE_SECRET = "tH1s-is-a-test-only-key-AAAAAAAAAAAAAAAAAAA="


def one_agency_two_keys(app, name="Puskesmas Sobo", services=("medicine_delivery",),
                        roles=None):
    """An agency's live key and its test key."""
    gateway = app.extensions["gateway"]
    _agency, live = create_agency(gateway, name, list(services), roles=roles or [],
                                  actor="test", key_type="live")
    return live, issue_key(gateway, name, "test", actor="test")


def stored(app, request_id) -> ServiceRequest:
    with app.extensions["gateway"].db.read() as session:
        record = session.get(ServiceRequest, request_id)
        session.expunge_all()
        return record


def _missing_like(response, missing):
    """The same answer as for an id that does not exist (the correlation id aside)."""
    body, expected = response.get_json(), missing.get_json()
    body.pop("correlation_id"), expected.pop("correlation_id")
    return response.status_code == missing.status_code and body == expected


@pytest.mark.parametrize("maker,reader", [("live", "test"), ("test", "live")])
def test_a_request_of_one_key_type_is_a_missing_id_to_the_other(
        app, medicine_body, maker, reader):
    client = app.test_client()
    keys = dict(zip(("live", "test"), one_agency_two_keys(app), strict=True))
    made = client.post(CREATE, json=medicine_body, headers=bearer(keys[maker])).get_json()
    request_id = made["id"]
    nobody = "00000000-0000-4000-8000-000000000000"
    other = bearer(keys[reader])

    for suffix, method in (("", "GET"), ("/fhir", "GET"), ("/cancel", "POST")):
        missing = client.open(f"/api/v1/requests/{nobody}{suffix}", method=method,
                              headers=other)
        response = client.open(f"/api/v1/requests/{request_id}{suffix}", method=method,
                               headers=other)
        assert response.status_code == 404, (suffix, response.get_json())
        assert _missing_like(response, missing), (suffix, response.get_json())

    listed = client.get("/api/v1/requests", headers=other).get_json()["requests"]
    assert request_id not in [r["id"] for r in listed]
    # untouched, and still the maker's to read
    assert stored(app, request_id).status == "received"
    own = client.get(f"/api/v1/requests/{request_id}", headers=bearer(keys[maker]))
    assert own.status_code == 200 and own.get_json()["key_type"] == maker


def test_one_idempotency_key_makes_one_request_per_key_type(app, medicine_body):
    client = app.test_client()
    live, test = one_agency_two_keys(app)
    headers = {"Idempotency-Key": "order-42"}
    first = client.post(CREATE, json=medicine_body, headers={**bearer(live), **headers})
    second = client.post(CREATE, json=medicine_body, headers={**bearer(test), **headers})
    assert first.status_code == second.status_code == 202, second.get_json()
    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["id"] != first.get_json()["id"]
    assert second.get_json()["key_type"] == "test"
    # another body under the same key is not "reused" either: the test key never saw it
    other = client.post(CREATE, json={**medicine_body, "prescription_id": "RX-OTHER"},
                        headers={**bearer(test), "Idempotency-Key": "order-43"})
    live_other = client.post(CREATE, json={**medicine_body, "prescription_id": "RX-LIVE"},
                             headers={**bearer(live), "Idempotency-Key": "order-43"})
    assert other.status_code == live_other.status_code == 202, live_other.get_json()
    # and each replays its own
    again = client.post(CREATE, json=medicine_body, headers={**bearer(test), **headers})
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == second.get_json()["id"]


def test_a_test_request_neither_blocks_nor_reveals_a_live_reference(app, medicine_body):
    """medicine_delivery allows one active request per prescription id: per key type."""
    client = app.test_client()
    live, test = one_agency_two_keys(app)
    assert client.post(CREATE, json=medicine_body, headers=bearer(test)).status_code == 202
    response = client.post(CREATE, json=medicine_body, headers=bearer(live))
    assert response.status_code == 202, response.get_json()
    again = client.post(CREATE, json=medicine_body, headers=bearer(test))
    assert (again.status_code, again.get_json()["code"]) == (409, "duplicate_reference")


def test_test_requests_take_no_seats_on_the_real_shuttle(app):
    from tests.plugins.test_tourism_transport import group, next_departure

    client = app.test_client()
    live, test = one_agency_two_keys(app, services=("tourism_transport",))
    url = "/api/v1/services/tourism_transport/requests"
    when = next_departure(22, 0)        # to Ijen: 14 seats (config/services.yaml)
    response = client.post(url, json=group(1, 14, when), headers=bearer(test))
    assert response.status_code == 202, response.get_json()
    response = client.post(url, json=group(2, 14, when), headers=bearer(live))
    assert response.status_code == 202, response.get_json()
    full = client.post(url, json=group(3, 5, when), headers=bearer(test))
    assert (full.status_code, full.get_json()["code"]) == (409, "capacity_full")


# -- the real world: couriers and the own fleet, in mode live ------------------------------
@pytest.fixture
def two_gosends():
    """Two GO-SEND simulators: one stands for the real GO-SEND (a live entry), one for its
    sandbox."""
    sims = []
    servers = []
    for _ in range(2):
        sim = GoSendSimulator(step_seconds=0.2, **GOSEND_TEST_CREDENTIALS)
        server = ServerThread(create_simulator_app(sim)).__enter__()
        sim.url = server.url
        sims.append(sim)
        servers.append(server)
    yield sims
    for server in servers:
        server.__exit__(None, None, None)


def test_in_live_mode_a_test_key_reaches_only_the_sandbox_courier(
        make_app, two_gosends, medicine_body):
    real, sandbox = two_gosends
    # The "real" GO-SEND is a simulator too, listed as a provider host by the deploy's file.
    app = make_app(mode="live", secret_key=LIVE_SECRET, courier_hosts=[real.url], couriers={
        "gosend": {"adapter": "gosend", "sandbox": False, "base_url": real.url,
                   "timeout_seconds": 2, **GOSEND_TEST_CREDENTIALS},
        "gosend_sandbox": {"base_url": sandbox.url, "timeout_seconds": 2,
                           **GOSEND_TEST_CREDENTIALS}},
        services={"medicine_delivery": {"couriers": ["gosend", "gosend_sandbox"]}})
    live, test = one_agency_two_keys(app)
    client = app.test_client()
    test_id = client.post(CREATE, json=medicine_body, headers=bearer(test)).get_json()["id"]
    wait_for_status(app, test_id, "booked")
    assert stored(app, test_id).provider == "gosend_sandbox"
    assert requests.get(f"{real.url}/_sim/bookings", timeout=5).json() == []
    live_id = client.post(CREATE, json={**medicine_body, "prescription_id": "RX-LIVE"},
                          headers=bearer(live)).get_json()["id"]
    wait_for_status(app, live_id, "booked")
    assert stored(app, live_id).provider == "gosend"
    assert len(requests.get(f"{real.url}/_sim/bookings", timeout=5).json()) == 1


def live_fleet_app(make_app):
    """mode live, the own fleet as shipped (``sandbox: true``): every key may book it."""
    return make_app(mode="live", secret_key=LIVE_SECRET, couriers={"own_fleet": {}},
                    services={"medicine_delivery": {"couriers": ["own_fleet"]}})


def test_in_live_mode_the_real_fleet_is_never_offered_a_test_request(
        make_app, medicine_body):
    app = live_fleet_app(make_app)
    client = app.test_client()
    pharmacy_live, pharmacy_test = one_agency_two_keys(app)
    staff_live, staff_test = one_agency_two_keys(app, "Gancang Aron office", services=(),
                                                 roles=["fleet_dispatch"])
    test_id = client.post(CREATE, json=medicine_body, headers=bearer(pharmacy_test)
                          ).get_json()["id"]
    wait_for_status(app, test_id, "booked")
    assert stored(app, test_id).provider == "own_fleet"

    # the real staff's list and the live console board do not show it
    assert client.get("/api/v1/fleet/jobs", headers=bearer(staff_live)).get_json()["jobs"] == []
    board = sign_in(app, "operator").client.get("/console/fleet").get_data(as_text=True)
    assert "Siti Aminah" not in board
    # the sandbox list (the office's test key) has it; the live key cannot move it
    (job,) = client.get("/api/v1/fleet/jobs", headers=bearer(staff_test)).get_json()["jobs"]
    refused = client.post(f"/api/v1/fleet/jobs/{job['id']}/accept", headers=bearer(staff_live))
    missing = client.post("/api/v1/fleet/jobs/nosuchjob/accept", headers=bearer(staff_live))
    assert refused.status_code == 404 and _missing_like(refused, missing)
    assert client.post(f"/api/v1/fleet/jobs/{job['id']}/accept", json={"staff_name": "Dev"},
                       headers=bearer(staff_test)).status_code == 200

    # and back: a live booking is the real staff's only
    live_id = client.post(CREATE, json={**medicine_body, "prescription_id": "RX-LIVE"},
                          headers=bearer(pharmacy_live)).get_json()["id"]
    wait_for_status(app, live_id, "booked")
    (real_job,) = client.get("/api/v1/fleet/jobs", headers=bearer(staff_live)
                             ).get_json()["jobs"]
    assert real_job["id"] != job["id"]
    assert [j["id"] for j in client.get("/api/v1/fleet/jobs", headers=bearer(staff_test)
                                        ).get_json()["jobs"]] == [job["id"]]
    assert "Siti Aminah" in sign_in(app, "admin").client.get("/console/fleet").get_data(
        as_text=True)
    drain(app)


def test_callbacks_and_the_fhir_view_say_a_request_is_a_test(
        app, medicine_body, callback_receiver):
    gateway = app.extensions["gateway"]
    name = "Puskesmas Kertosari"
    create_agency(gateway, name, ["medicine_delivery"], callback_receiver.url, actor="test")
    test = issue_key(gateway, name, "test", actor="test")
    client = app.test_client()
    request_id = client.post(CREATE, json=medicine_body, headers=bearer(test)).get_json()["id"]
    client.post(f"/api/v1/requests/{request_id}/cancel", headers=bearer(test))
    drain(app)
    bodies = [json.loads(call.body) for call in callback_receiver.received]
    assert bodies and all(b["key_type"] == "test" for b in bodies), bodies
    fhir = client.get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(test)).get_json()
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": "HTEST", "display": "test health data"} in fhir["meta"]["tag"]


# -- migration 0007 --------------------------------------------------------------------
def test_migration_0007_derives_each_requests_key_type_from_its_key(gateway_database_url):
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from gateway.db import Database
    from gateway.migrate import upgrade
    from gateway.models import Agency, ApiKey

    db = Database(gateway_database_url)
    try:
        upgrade(db, "0006")
        with db.write() as session:
            session.add(Agency(id="a1", name="Puskesmas", services=[], roles=[]))
            session.flush()
            for key_id, prefix in (("k-test", "gw_test_AAAAAAAAAA"),
                                   ("k-live", "gw_live_BBBBBBBBBB")):
                session.add(ApiKey(id=key_id, agency_id="a1", prefix=prefix,
                                   key_hash="0" * 64, key_type=prefix[3:7]))
            session.flush()

            def request(request_id, key_id, key_type, idempotency_key):
                # a Core insert of the columns of revision 0006 (the model has more since)
                session.execute(insert(ServiceRequest.__table__).values(
                    id=request_id, agency_id="a1", api_key_id=key_id, service="s",
                    key_type=key_type, status="received", idempotency_key=idempotency_key,
                    request_fingerprint="f", correlation_id="c"))

            # a row whose stored type disagrees with the key that made it
            request("r-wrong", "k-test", "live", "one")
            request("r-live", "k-live", "live", "two")
        upgrade(db, "head")
        with db.write() as session:
            assert session.get(ServiceRequest, "r-wrong").key_type == "test"
            assert session.get(ServiceRequest, "r-live").key_type == "live"
            # one Idempotency-Key, one request per key type ...
            session.add(ServiceRequest(
                id="r-test", agency_id="a1", api_key_id="k-test", service="s",
                key_type="test", status="received", idempotency_key="two",
                request_fingerprint="f", correlation_id="c"))
        # ... and still only one per key type
        with pytest.raises(IntegrityError), db.write() as session:
            session.add(ServiceRequest(
                id="r-again", agency_id="a1", api_key_id="k-live", service="s",
                key_type="live", status="received", idempotency_key="two",
                request_fingerprint="f", correlation_id="c"))
    finally:
        db.dispose()


# -- the console: admins see both worlds, each labelled ----------------------------------
def test_the_console_labels_test_requests_and_filters_by_key_type(make_app, medicine_body):
    app = make_app(couriers={"own_fleet": {}},
                   services={"medicine_delivery": {"couriers": ["own_fleet"]}})
    client = app.test_client()
    live, test = one_agency_two_keys(app)
    test_id = client.post(CREATE, json=medicine_body, headers=bearer(test)).get_json()["id"]
    live_id = client.post(CREATE, json={**medicine_body, "prescription_id": "RX-LIVE"},
                          headers=bearer(live)).get_json()["id"]
    wait_for_status(app, test_id, "booked")
    wait_for_status(app, live_id, "booked")
    admin = sign_in(app, "admin").client

    every = admin.get("/console/requests").get_data(as_text=True)
    assert f"request-{test_id}" in every and f"request-{live_id}" in every
    only_live = admin.get("/console/requests?key_type=live").get_data(as_text=True)
    assert f"request-{live_id}" in only_live and f"request-{test_id}" not in only_live
    # in mode sandbox nothing is real: the board shows both bookings, the test one labelled
    board = admin.get("/console/fleet").get_data(as_text=True)
    assert board.count('class="card fleet-job"') == 2
    assert board.count('<span class="status">test</span>') == 1
