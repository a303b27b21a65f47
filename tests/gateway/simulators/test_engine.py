"""The simulator engine's random faults (``fault_rates``): drawn per create call over real
HTTP, reproducible with a seed, never drawn at rate 0, and beside the magic words, queued
faults and outages, which keep working."""

from __future__ import annotations

import pytest
import requests

from gateway.couriers.goride.simulator import GoRideSimulator
from gateway.couriers.gosend.simulator import GoSendSimulator
from gateway.couriers.grabexpress.simulator import GrabExpressSimulator
from gateway.couriers.lalamove.simulator import LalamoveSimulator
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import wait_for_status
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, detail, sim_get, sim_post

CREATE = "/gokilat/v10/booking"


def create(sim, n: int, note: str = "") -> requests.Response:
    """One GO-SEND create call, as the adapter makes it (only what the simulator checks)."""
    return requests.post(f"{sim.url}{CREATE}", timeout=5,
                         headers={"Client-ID": GOSEND_TEST_CREDENTIALS["client_id"],
                                  "Pass-Key": GOSEND_TEST_CREDENTIALS["pass_key"]},
                         json={"routes": [{"storeOrderId": f"ref-{n}",
                                           "destinationContactName": "Siti",
                                           "destinationNote": note}]})


def configure(sim, **body) -> requests.Response:
    return requests.post(f"{sim.url}/_sim/config", json=body, timeout=5)


def test_a_seeded_simulator_draws_the_same_faults_in_the_same_order_twice(gateway_gosend):
    rates = {"5xx": 0.2, "reject": 0.1}
    assert configure(gateway_gosend, fault_rates=rates, fault_seed=7).status_code == 200
    first = [create(gateway_gosend, n).status_code for n in range(60)]
    assert configure(gateway_gosend, fault_seed=7).status_code == 200   # the sequence restarts
    second = [create(gateway_gosend, n).status_code for n in range(60)]
    assert first == second
    assert {201, 503, 422} == set(first), "with these rates all three answers occur in 60"
    # The same seed in the constructor draws the same sequence as through the config.
    twin = GoSendSimulator(fault_rates=rates, fault_seed=7, **GOSEND_TEST_CREDENTIALS)
    answers = {"5xx": 503, "reject": 422}
    assert [answers.get(next(iter(twin.take_faults("")), None), 201)
            for _ in range(60)] == first


def test_a_rate_draws_about_that_share_of_create_calls_and_counts_them(gateway_gosend):
    configure(gateway_gosend, fault_rates={"no_driver": 0.25}, fault_seed=1)
    answers = [create(gateway_gosend, n).status_code for n in range(200)]
    assert answers.count(201) == 200, "no_driver takes the booking, then ends it"
    drawn = sim_get(gateway_gosend, "/_sim/faults")["drawn"]["no_driver"]
    assert 30 <= drawn <= 70
    ended = [b for b in bookings(gateway_gosend) if "no_driver" in b["faults"]]
    assert len(ended) == drawn


def test_rate_zero_never_draws_its_fault(gateway_gosend):
    configure(gateway_gosend, fault_rates={"5xx": 0, "reject": 0.0, "timeout": 0}, fault_seed=3)
    assert all(create(gateway_gosend, n).status_code == 201 for n in range(40))
    assert all(not b["faults"] for b in bookings(gateway_gosend))
    assert sim_get(gateway_gosend, "/_sim/faults")["drawn"] == {}
    quiet = GoSendSimulator(fault_rates={"no_driver": 0.0}, fault_seed=5, **GOSEND_TEST_CREDENTIALS)
    assert not any(quiet.take_faults("") for _ in range(5000))


def test_magic_words_queued_faults_and_outages_still_work_beside_rates(gateway_gosend):
    configure(gateway_gosend, fault_rates={"stall": 0.0})
    assert create(gateway_gosend, 1, note="[sim:5xx]").status_code == 503
    sim_post(gateway_gosend, "/_sim/faults", {"create": ["reject"]})
    assert create(gateway_gosend, 2).status_code == 422
    assert create(gateway_gosend, 3).status_code == 201
    sim_post(gateway_gosend, "/_sim/outage", {"kind": "429", "seconds": 30})
    assert create(gateway_gosend, 4).status_code == 429
    sim_post(gateway_gosend, "/_sim/outage", {"kind": None})
    assert create(gateway_gosend, 5).status_code == 201


@pytest.mark.parametrize("body", [
    {"fault_rates": {"5xx": 1.5}},
    {"fault_rates": {"5xx": 0.6, "reject": 0.5}},
    {"fault_rates": {"Not A Fault": 0.1}},
    {"fault_rates": ["5xx"]},
    {"fault_rates": {"5xx": True}},
    {"fault_seed": "seven"},
])
def test_bad_fault_rates_are_refused_and_change_nothing(gateway_gosend, body):
    configure(gateway_gosend, fault_rates={"no_driver": 0.1})
    assert configure(gateway_gosend, **body).status_code == 400
    assert sim_get(gateway_gosend, "/_sim/faults")["rates"] == {"no_driver": 0.1}


@pytest.mark.parametrize("simulator", [
    lambda rates: GoSendSimulator(fault_rates=rates, **GOSEND_TEST_CREDENTIALS),
    lambda rates: GoRideSimulator(fault_rates=rates, **GOSEND_TEST_CREDENTIALS),
    lambda rates: GrabExpressSimulator(client_id="c", client_secret="s", fault_rates=rates),
    lambda rates: LalamoveSimulator(api_key="k", api_secret="s", fault_rates=rates),
], ids=["gosend", "goride", "grabexpress", "lalamove"])
def test_every_simulator_takes_fault_rates_in_its_constructor(simulator):
    sim = simulator({"reject": 1.0})
    assert [sim.take_faults("") for _ in range(3)] == [{"reject"}] * 3
    assert sim.take_faults("[sim:stall]") == {"reject", "stall"}


def test_every_create_refused_at_rate_one_fails_the_request_over_to_the_next_courier(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    key = new_key(app, key_type="test")
    configure(gateway_gosend, fault_rates={"reject": 1.0})
    response = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                      json=medicine_body, headers=bearer(key))
    request_id = response.get_json()["id"]
    wait_for_status(app, request_id, "booked")
    body = detail(app, key, request_id)
    assert body["provider"] == "own_fleet"
    assert bookings(gateway_gosend) == []
    assert sim_get(gateway_gosend, "/_sim/faults")["drawn"] == {"reject": 1}


def test_every_create_refused_at_rate_one_fails_the_request_when_no_courier_is_left(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(services={"medicine_delivery": {"couriers": ["gosend_sandbox"]}})
    key = new_key(app, key_type="test")
    configure(gateway_gosend, fault_rates={"reject": 1.0})
    request_ids = []
    for n in range(3):
        response = app.test_client().post(
            "/api/v1/services/medicine_delivery/requests", headers=bearer(key),
            json={**medicine_body, "prescription_id": f"RX-{n}"})
        request_ids.append(response.get_json()["id"])
    for request_id in request_ids:
        assert wait_for_status(app, request_id, {"failed", "booked"}) == "failed"
        assert detail(app, key, request_id)["failure_code"] == "rejected"
    assert bookings(gateway_gosend) == []
    creates = [r for r in sim_get(gateway_gosend, "/_sim/requests") if r["path"] == CREATE]
    assert len(creates) == 3, "a refusal is an answer: not retried at the same courier"
