"""A provider's own identifiers (order numbers, our references) put in a URL path stay one
path segment: a value like ``../../admin`` or ``A/B?x=1`` cannot walk to another endpoint of
the provider or add a query to the call, credentials included.

The attack: an order number we did not choose (it comes from the provider's answer or a
webhook) reaches every later status, lookup and cancel call. Each adapter talks over real
HTTP to its simulator, whose call log shows the path exactly as it arrived on the wire.
"""

from __future__ import annotations

import pytest

from gateway.couriers import CourierError
from gateway.couriers.gosend.adapter import GoSendConfigSchema, GoSendCourier
from gateway.couriers.lalamove.adapter import LalamoveConfigSchema, LalamoveCourier
from gateway.couriers.lalamove.simulator import LalamoveSimulator
from gateway.couriers.lalamove.simulator import create_simulator_app as lalamove_app
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import ServerThread
from tests.gateway.couriers.helpers import sim_get

HOSTILE = ["../../admin", "A/B?x=1", "GK-1#frag", "%2e%2e%2Fadmin"]
LALAMOVE_CREDENTIALS = {"api_key": "pk_test_engine",
                        "api_secret": "sk_test_engine-secret-0123456789"}


@pytest.fixture
def lalamove_sim():
    sim = LalamoveSimulator(step_seconds=0.2, **LALAMOVE_CREDENTIALS)
    with ServerThread(lalamove_app(sim)) as server:
        sim.url = server.url
        yield sim


def gosend(sim) -> GoSendCourier:
    config = GoSendConfigSchema().load({"base_url": sim.url, **GOSEND_TEST_CREDENTIALS})
    return GoSendCourier("gosend_sandbox", {**config, "sandbox": True, "timeout_seconds": 2})


def lalamove(sim) -> LalamoveCourier:
    config = LalamoveConfigSchema().load({"base_url": sim.url, **LALAMOVE_CREDENTIALS})
    return LalamoveCourier("lalamove_sandbox", {**config, "sandbox": True,
                                                "timeout_seconds": 2})


def last_call(sim) -> dict:
    return sim_get(sim, "/_sim/requests")[-1]


def escaped(value: str) -> str:
    """The one path segment a value must become: every reserved character percent-encoded."""
    from urllib.parse import quote

    return quote(value, safe="")


@pytest.mark.parametrize("order_no", HOSTILE)
def test_a_gosend_order_number_stays_one_path_segment_of_the_status_call(gateway_gosend, order_no):
    with pytest.raises(CourierError):
        gosend(gateway_gosend).get_status(order_no)
    call = last_call(gateway_gosend)
    assert call["raw_path"] == f"/gokilat/v10/booking/orderno/{escaped(order_no)}"
    assert call["query"] == {}


@pytest.mark.parametrize("reference", HOSTILE)
def test_a_reference_stays_one_path_segment_of_the_gosend_lookup(gateway_gosend, reference):
    assert gosend(gateway_gosend).find_by_reference(reference) is None
    call = last_call(gateway_gosend)
    assert call["raw_path"] == f"/gokilat/v10/booking/storeOrderId/{escaped(reference)}"
    assert call["query"] == {}


@pytest.mark.parametrize("order_id", HOSTILE)
def test_a_lalamove_order_id_stays_one_path_segment_of_the_status_call(lalamove_sim, order_id):
    with pytest.raises(CourierError):
        lalamove(lalamove_sim).get_status(order_id)
    call = last_call(lalamove_sim)
    assert call["raw_path"] == f"/v3/orders/{escaped(order_id)}"
    assert call["query"] == {}
