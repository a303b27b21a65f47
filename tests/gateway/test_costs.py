"""What deliveries cost: quotes asked of the simulators over real HTTP before booking, the
routing policies, the final price from the providers' reports, and budgets (refuse, hold and
release, the race for the last of a budget, the console's warning)."""

from __future__ import annotations

import copy
import threading
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from gateway import costs, geo
from gateway.couriers import CourierTemporaryError, Quote
from gateway.couriers.gosend import simulator as gosend_simulator
from gateway.couriers.gosend.adapter import GoSendConfigSchema, GoSendCourier
from gateway.couriers.grabexpress import simulator as grab_simulator
from gateway.couriers.grabexpress.adapter import GrabExpressConfigSchema, GrabExpressCourier
from gateway.couriers.grabexpress.simulator import GrabExpressSimulator
from gateway.couriers.lalamove import simulator as lalamove_simulator
from gateway.couriers.lalamove.adapter import LalamoveConfigSchema, LalamoveCourier
from gateway.couriers.lalamove.simulator import LalamoveSimulator
from gateway.couriers.own_fleet.adapter import tariff_quote
from gateway.models import ApiKey, AuditRecord, Budget, DeliveryQuote, ServiceRequest, utcnow
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import ServerThread, drain, wait_for_status
from tests.conftest import MEDICINE_BODY, bearer, new_key
from tests.console.conftest import sign_in
from tests.gateway.couriers.helpers import detail, sim_get, sim_post

MEDICINE = "/api/v1/services/medicine_delivery/requests"
UMKM = "/api/v1/services/umkm_pickup/requests"
GRAB_API = "/grab-express-sandbox"
GRAB_TOKEN_PATH = "/grabid/v1/oauth2/token"
GRAB_CREDENTIALS = {"client_id": "test-grab-client", "client_secret": "test-grab-secret",
                    "webhook_auth": "test-grab-webhook-auth-0123456789",
                    "webhook_auth_id": "test-grab-webhook-id"}
LALAMOVE_CREDENTIALS = {"api_key": "pk_test_engine",
                        "api_secret": "sk_test_engine-secret-0123456789"}
#: the medicine body's pickup (puskesmas-sobo in config/services.yaml) and drop-off
SOBO, PATIENT = (-8.2166, 114.3632), (-8.2192, 114.3691)
#: what GO-SEND's simulator charges for that delivery (its Instant tariff)
MEDICINE_PRICE = gosend_simulator.price_for(geo.distance_km(*SOBO, *PATIENT))
#: booked, or further on (the simulator's clock moves bookings along)
BOOKED = {"booked", "driver_assigned", "picked_up", "delivered"}

ORDER = DeliveryOrder(
    reference="REQ-1",
    pickup=Place("Jl. Kemiren No. 12", -8.2163, 114.3167,
                 Contact("Pak Slamet", "+6281234567891")),
    dropoffs=(Place("Jl. Ahmad Yani No. 80", -8.2190, 114.3690,
                    Contact("Dewi Lestari", "+6285234567890")),),
    package=Package("Kopi bubuk 1 kg", weight_grams=1200))
ORDER_KM = geo.distance_km(-8.2163, 114.3167, -8.2190, 114.3690)


# -- fixtures: the simulators on free ports --------------------------------------------------
@pytest.fixture
def grab_sim():
    sim = GrabExpressSimulator(step_seconds=0.2, slow_seconds=2.0, prefix=GRAB_API,
                               **GRAB_CREDENTIALS)
    with ServerThread(sim.create_app()) as server:
        sim.url = server.url
        sim.start_clock()
        yield sim
        sim.stop_clock()


@pytest.fixture
def lalamove_sim():
    sim = LalamoveSimulator(step_seconds=0.2, slow_seconds=2.0, **LALAMOVE_CREDENTIALS)
    with ServerThread(sim.create_app()) as server:
        sim.url = server.url
        yield sim


def grab_entry(sim) -> dict:
    return {"adapter": "grabexpress", "sandbox": True, "base_url": f"{sim.url}{GRAB_API}",
            "token_url": f"{sim.url}{GRAB_TOKEN_PATH}", "timeout_seconds": 2, "limits": {},
            **GRAB_CREDENTIALS}


@pytest.fixture
def priced_app(make_app, gateway_gosend, grab_sim, serve_app):
    """An app with GO-SEND and GrabExpress on their simulators (UMKM parcels: Grab first,
    then GO-SEND; medicine: GO-SEND), served over HTTP for the webhooks."""

    def make(umkm=None, medicine=None):
        app = make_app(
            couriers={"gosend_sandbox": {"base_url": gateway_gosend.url, "timeout_seconds": 2,
                                         **GOSEND_TEST_CREDENTIALS},
                      "grab_sandbox": grab_entry(grab_sim)},
            services={"umkm_pickup": {"couriers": ["grab_sandbox", "gosend_sandbox"],
                                      **(umkm or {})},
                      "medicine_delivery": {"couriers": ["gosend_sandbox"],
                                            **(medicine or {})}})
        return serve_app(app, gateway_gosend, "gosend_sandbox")

    return make


def submit(app, key, path, body, status=202):
    response = app.test_client().post(path, json=body, headers=bearer(key))
    assert response.status_code == status, response.get_json()
    return response.get_json()


def umkm_body(app, order_id):
    body = dict(app.extensions["gateway"].services["umkm_pickup"].example_request)
    return {**body, "order_id": order_id}


def calls(sim, method, path):
    return [r for r in sim_get(sim, "/_sim/requests")
            if r["method"] == method and r["path"] == path]


def quotes_of(app, request_id) -> list[DeliveryQuote]:
    with app.extensions["gateway"].db.read() as session:
        return list(session.scalars(select(DeliveryQuote).where(
            DeliveryQuote.request_id == request_id).order_by(DeliveryQuote.id)))


def budget_row(app, agency_id, period) -> Budget:
    with app.extensions["gateway"].db.read() as session:
        return session.scalars(select(Budget).where(Budget.agency_id == agency_id,
                                                    Budget.period == period)).one()


def this_month(app) -> str:
    gateway = app.extensions["gateway"]
    return costs.periods(gateway.region, utcnow())[0]


def agency_of(app, key) -> str:
    with app.extensions["gateway"].db.read() as session:
        prefix = "_".join(key.split("_")[:3])
        return session.scalars(select(ApiKey.agency_id).where(ApiKey.prefix == prefix)).one()


# -- pure: distance and policy -----------------------------------------------------------------
def test_distance_is_the_great_circle_and_money_is_whole_rupiah():
    assert geo.distance_m(-8.2166, 114.3632, -8.2166, 114.3632) == 0
    # one degree of latitude is about 111.2 km everywhere
    assert 111_000 < geo.distance_m(-8.0, 114.0, -9.0, 114.0) < 111_400
    assert geo.parse_latlong("-8.2192,114.3691") == (-8.2192, 114.3691)
    for bad in ("", "1", "x,y", "91,0", "0,181", "nan,1"):
        with pytest.raises(ValueError):
            geo.parse_latlong(bad)
    quote = tariff_quote("own_fleet", ORDER, {"base": 5000, "per_km": 1500, "per_passenger": 0,
                                              "pickup_minutes": 20, "speed_kmh": 30}, "IDR")
    assert quote.price == 5000 + 1500 * 6 and isinstance(quote.price, int)
    assert quote.duration_minutes == 20 + 12


def test_policies_order_couriers_by_their_quotes_and_keep_the_unquoted_in_order():
    quotes = {"a": Quote("a", 30000, duration_minutes=40),
              "b": Quote("b", 20000, duration_minutes=200),      # cheap but too slow
              "c": Quote("c", 25000, duration_minutes=None),     # no estimate: counts as on time
              "d": CourierTemporaryError("503"),                 # failed: stays in order
              "e": Quote("e", None, serviceable=False)}
    chosen = ["d", "a", "b", "c", "e"]
    assert costs.order_by_policy(chosen, quotes, "ordered", 120) == chosen
    assert costs.order_by_policy(chosen, quotes, "cheapest", 120) == ["c", "a", "d", "b", "e"]
    assert costs.order_by_policy(chosen, quotes, "cheapest", None) == ["b", "c", "a", "d", "e"]
    assert costs.order_by_policy(chosen, quotes, "fastest", 120) == ["a", "b", "d", "c", "e"]
    assert costs.order_by_policy(chosen, {}, "cheapest", 120) == chosen


def test_budget_levels_warn_at_eighty_percent_and_stop_at_the_limit():
    def level(used, limit=10000):
        return costs.BudgetState(1, "a", "s", "2026", limit, used, 0, "IDR").level

    assert (level(7999), level(8000), level(9999), level(10000)) == \
        ("ok", "warning", "warning", "exhausted")
    assert level(0, limit=0) == "exhausted"
    assert costs.BudgetState(1, "a", "s", "2026", 3, 1, 0, "IDR").share == Decimal(1) / 3
    assert [costs.valid_period(p) for p in ("2026", "2026-12", "2026-13", "26-1", "2026-1",
                                            "abcd", "2026-00")] == \
        [True, True, False, False, False, False, False]


# -- each provider's quote call, as its documentation says ----------------------------------
def test_gosend_is_asked_its_price_estimate_by_query_with_our_credentials(gateway_gosend):
    courier = GoSendCourier("gosend_sandbox", {**GoSendConfigSchema().load(
        {"base_url": gateway_gosend.url, **GOSEND_TEST_CREDENTIALS}), "sandbox": True})
    quote = courier.quote(ORDER)

    (call,) = calls(gateway_gosend, "GET", "/gokilat/v10/calculate/price")
    assert call["query"] == {"origin": "-8.216300,114.316700",
                             "destination": "-8.219000,114.369000",
                             "paymentType": "3"}
    assert call["caller"] == GOSEND_TEST_CREDENTIALS["client_id"]
    assert (quote.courier, quote.currency, quote.serviceable) == ("gosend_sandbox", "IDR", True)
    assert quote.price == gosend_simulator.price_for(ORDER_KM) == 20000


def test_lalamove_is_asked_a_quotation_whose_id_its_order_then_names(lalamove_sim):
    config = LalamoveConfigSchema().load({"base_url": lalamove_sim.url,
                                          **LALAMOVE_CREDENTIALS})
    courier = LalamoveCourier("lalamove_sandbox", {**config, "sandbox": True})
    quote = courier.quote(ORDER)

    (call,) = calls(lalamove_sim, "POST", "/v3/quotations")
    data = call["json"]["data"]
    assert data["serviceType"] == "MOTORCYCLE"
    assert [s["coordinates"] for s in data["stops"]] == [
        {"lat": "-8.216300", "lng": "114.316700"}, {"lat": "-8.219000", "lng": "114.369000"}]
    assert quote.price == lalamove_simulator.price_for(ORDER_KM * 1000) == 24000
    assert quote.valid_until is not None and quote.currency == "IDR"

    courier.book(ORDER, "REQ-1-1")
    assert len(calls(lalamove_sim, "POST", "/v3/quotations")) == 1, "the quotation is used"
    (order,) = calls(lalamove_sim, "POST", "/v3/orders")
    assert order["json"]["data"]["quotationId"]


def test_grab_is_asked_delivery_quotes_with_the_parcel_and_both_places(grab_sim):
    config = GrabExpressConfigSchema().load({
        "base_url": f"{grab_sim.url}{GRAB_API}", "token_url": f"{grab_sim.url}{GRAB_TOKEN_PATH}",
        **GRAB_CREDENTIALS})
    courier = GrabExpressCourier("grab_sandbox", {**config, "sandbox": True})
    quote = courier.quote(ORDER)

    (call,) = calls(grab_sim, "POST", f"{GRAB_API}/v1/deliveries/quotes")
    body = call["json"]
    assert (body["serviceType"], body["vehicleType"]) == ("INSTANT", "BIKE")
    assert body["origin"]["coordinates"] == {"latitude": -8.2163, "longitude": 114.3167}
    assert body["destination"]["coordinates"] == {"latitude": -8.219, "longitude": 114.369}
    assert body["packages"][0]["dimensions"]["weight"] == 1200
    assert quote.price == grab_simulator.price_for(round(ORDER_KM * 1000)) == 22500
    assert 25 <= quote.duration_minutes <= 31    # its estimatedTimeline's drop-off


# -- policies through the API --------------------------------------------------------------------
def test_cheapest_policy_books_the_cheaper_simulator_after_asking_both(
        priced_app, gateway_gosend, grab_sim):
    app = priced_app(umkm={"routing_policy": "cheapest"})
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, UMKM, umkm_body(app, "BWM-1"))["id"]
    wait_for_status(app, request_id, BOOKED)

    # both were asked over HTTP before anything was booked; GO-SEND (20,000) beats Grab
    assert len(calls(gateway_gosend, "GET", "/gokilat/v10/calculate/price")) == 1
    assert len(calls(grab_sim, "POST", f"{GRAB_API}/v1/deliveries/quotes")) == 1
    assert calls(grab_sim, "POST", f"{GRAB_API}/v1/deliveries") == []
    body = detail(app, key, request_id)
    assert body["provider"] == "gosend_sandbox"
    # (final: whatever GO-SEND's reports have said by now, its webhooks carry the price)
    assert {k: v for k, v in body["cost"].items() if k != "final"} == {
        "quoted": 20000, "currency": "IDR", "provider": "gosend_sandbox"}
    recorded = {(q.courier, q.amount, q.chosen) for q in quotes_of(app, request_id)}
    assert recorded == {("gosend_sandbox", 20000, True), ("grab_sandbox", 22500, False)}


def test_ordered_policy_keeps_the_configured_order_and_fastest_takes_the_estimate(
        priced_app, grab_sim):
    ordered = priced_app()
    key = new_key(ordered, services=["umkm_pickup"], key_type="test")
    first = submit(ordered, key, UMKM, umkm_body(ordered, "BWM-1"))["id"]
    wait_for_status(ordered, first, BOOKED)
    assert detail(ordered, key, first)["cost"]["provider"] == "grab_sandbox"
    assert detail(ordered, key, first)["cost"]["quoted"] == 22500

    fastest = priced_app(umkm={"routing_policy": "fastest",
                               "couriers": ["gosend_sandbox", "grab_sandbox"]})
    key = new_key(fastest, services=["umkm_pickup"], key_type="test")
    second = submit(fastest, key, UMKM, umkm_body(fastest, "BWM-2"))["id"]
    wait_for_status(fastest, second, BOOKED)
    # only Grab gives an estimate (GO-SEND's price call has none): it goes first
    assert detail(fastest, key, second)["provider"] == "grab_sandbox"


def test_a_quote_that_fails_never_blocks_dispatch(priced_app, gateway_gosend, grab_sim):
    app = priced_app(umkm={"routing_policy": "cheapest",
                           "couriers": ["gosend_sandbox", "grab_sandbox"]})
    sim_post(gateway_gosend, "/_sim/config", {"price_faults": ["5xx"]})
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, UMKM, umkm_body(app, "BWM-1"))["id"]
    wait_for_status(app, request_id, BOOKED)

    assert len(calls(gateway_gosend, "GET", "/gokilat/v10/calculate/price")) == 1
    body = detail(app, key, request_id)
    assert body["provider"] == "grab_sandbox"
    assert any("no quote from gosend_sandbox" in (e["detail"] or "") for e in body["timeline"])
    outcomes = {q.courier: q.outcome for q in quotes_of(app, request_id)}
    assert outcomes == {"gosend_sandbox": "failed", "grab_sandbox": "ok"}

    # ordered: the courier whose quote failed is booked all the same, in its place
    ordered = priced_app(medicine={"routing_policy": "ordered"})
    sim_post(gateway_gosend, "/_sim/config", {"price_faults": ["5xx"]})
    key = new_key(ordered, key_type="live")
    other = submit(ordered, key, MEDICINE, {**_medicine(), "prescription_id": "RX-Q"})["id"]
    wait_for_status(ordered, other, BOOKED)
    body = detail(ordered, key, other)
    assert body["provider"] == "gosend_sandbox" and body["cost"]["quoted"] is None


def _medicine():
    return copy.deepcopy(MEDICINE_BODY)


def test_the_final_price_is_the_one_the_provider_reports(priced_app, gateway_gosend):
    app = priced_app()
    key = new_key(app, key_type="live")
    request_id = submit(app, key, MEDICINE, _medicine())["id"]
    assert detail(app, key, request_id)["cost"] == {
        "quoted": None, "final": None, "currency": "IDR", "provider": None}
    wait_for_status(app, request_id, "delivered")

    # the price GO-SEND's delivered webhook carried is the request's final price
    (delivered,) = [w["body"] for w in gateway_gosend.webhooks
                    if w["body"]["status"] == "delivered"]
    cost = detail(app, key, request_id)["cost"]
    assert cost == {"quoted": MEDICINE_PRICE, "final": round(delivered["price"]),
                    "currency": "IDR", "provider": "gosend_sandbox"}
    # the console's request page shows the same, in the reader's language and the currency
    page = sign_in(app, "auditor").get(f"/console/requests/{request_id}").get_data(as_text=True)
    shown = page[page.index('id="request-cost"'):].split("</dd>")[0]
    assert f"quoted IDR{MEDICINE_PRICE:,}" in shown and f"final IDR{cost['final']:,}" in shown


# -- budgets through the API and the console -------------------------------------------------------
def test_with_a_budget_of_one_delivery_the_second_request_is_refused(priced_app):
    app = priced_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="live")
    agency = agency_of(app, key)
    costs.set_budget(gateway, agency, "medicine_delivery", this_month(app), MEDICINE_PRICE,
                     actor="test")
    first = submit(app, key, MEDICINE, _medicine())["id"]
    wait_for_status(app, first, BOOKED)
    # reserved at booking; the simulator may already have delivered it on a busy machine, and
    # delivery turns the reservation into spending: either way the whole budget is taken
    row = budget_row(app, agency, this_month(app))
    assert (row.reserved, row.spent) in {(MEDICINE_PRICE, 0), (0, MEDICINE_PRICE)}

    refused = submit(app, key, MEDICINE, {**_medicine(), "prescription_id": "RX-2"},
                     status=409)
    assert (refused["code"], refused["status"]) == ("budget_exhausted", 409)
    assert refused["message"] and refused["details"] == {"periods": [this_month(app)]}
    with gateway.db.read() as session:
        assert session.scalars(select(ServiceRequest.id)).all() == [first]

    # a test key's requests are not the budget's: they go through
    test_key = new_key(app, key_type="test")
    submit(app, test_key, MEDICINE, {**_medicine(), "prescription_id": "RX-3"})

    # delivered: the reservation becomes spending at the reported price
    wait_for_status(app, first, "delivered")
    row = budget_row(app, agency, this_month(app))
    assert (row.reserved, row.spent) == (0, MEDICINE_PRICE)


def test_with_the_hold_setting_the_second_request_waits_and_is_released_from_the_console(
        priced_app, gateway_gosend):
    app = priced_app(medicine={"on_budget_exhausted": "hold"})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="live")
    agency = agency_of(app, key)
    costs.set_budget(gateway, agency, "medicine_delivery", this_month(app)[:4],
                     MEDICINE_PRICE, actor="test")
    first = submit(app, key, MEDICINE, _medicine())["id"]
    wait_for_status(app, first, BOOKED)

    held = submit(app, key, MEDICINE, {**_medicine(), "prescription_id": "RX-2"})
    assert held["status"] == "held_for_budget"
    drain(app)
    assert detail(app, key, held["id"])["status"] == "held_for_budget"
    assert len(calls(gateway_gosend, "POST", "/gokilat/v10/booking")) == 1

    operator = sign_in(app, "operator")
    page = operator.get(f"/console/agencies/{agency}/budgets").get_data(as_text=True)
    assert held["id"] in page and "Release" not in page
    assert operator.post(f"/console/requests/{held['id']}/release").status_code == 403

    admin = sign_in(app, "admin")
    page = admin.get(f"/console/agencies/{agency}/budgets").get_data(as_text=True)
    assert "is used up (100%)" in page and held["id"] in page
    # another agency's manager meets the same 404 as for an unknown request, and changes nothing
    other = new_key(app, key_type="live", name="Another office")
    outsider = sign_in(app, "agency_manager", agency=agency_of(app, other))
    assert outsider.post(f"/console/requests/{held['id']}/release").status_code == 404
    assert detail(app, key, held["id"])["status"] == "held_for_budget"
    # the agency's own manager approves it, from the request's page
    manager = sign_in(app, "agency_manager", agency=agency)
    page = manager.get(f"/console/requests/{held['id']}").get_data(as_text=True)
    assert 'id="held-actions"' in page
    response = manager.post(f"/console/requests/{held['id']}/release")
    assert response.status_code == 302
    wait_for_status(app, held["id"], BOOKED)
    assert len(calls(gateway_gosend, "POST", "/gokilat/v10/booking")) == 2
    row = budget_row(app, agency, this_month(app)[:4])    # the released one goes over it
    assert row.reserved + row.spent == 2 * MEDICINE_PRICE
    with gateway.db.read() as session:
        (audit,) = session.scalars(select(AuditRecord).where(
            AuditRecord.action == "budget.release")).all()
        assert audit.target == f"request:{held['id']}" and audit.actor.endswith(manager.username)

    # a request no longer held cannot be released twice, nor refused
    admin.post(f"/console/requests/{held['id']}/refuse")
    assert detail(app, key, held["id"])["status"] != "failed"


def test_a_held_request_refused_in_the_console_fails_with_budget_exhausted(priced_app):
    app = priced_app(medicine={"on_budget_exhausted": "hold"})
    key = new_key(app, key_type="live")
    agency = agency_of(app, key)
    costs.set_budget(app.extensions["gateway"], agency, "medicine_delivery", this_month(app),
                     0, actor="test")
    held = submit(app, key, MEDICINE, _medicine())
    assert held["status"] == "held_for_budget"
    admin = sign_in(app, "admin")
    admin.get(f"/console/requests/{held['id']}")
    assert admin.post(f"/console/requests/{held['id']}/refuse").status_code == 302
    body = detail(app, key, held["id"])
    assert (body["status"], body["failure_code"]) == ("failed", "budget_exhausted")


@pytest.mark.parametrize("round_", range(3))
def test_two_requests_racing_for_the_last_of_a_budget_exactly_one_reserves(make_app, round_):
    app = make_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="live")
    agency = agency_of(app, key)
    ids = [submit(app, key, MEDICINE, {**_medicine(), "prescription_id": f"RX-{n}"})["id"]
           for n in range(2)]
    costs.set_budget(gateway, agency, "medicine_delivery", this_month(app), 10000,
                     actor="test")
    barrier, results = threading.Barrier(2), {}

    def reserve(request_id):
        barrier.wait()
        results[request_id] = costs.reserve(gateway, request_id, 10000)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [False, True]
    assert budget_row(app, agency, this_month(app)).reserved == 10000
    with gateway.db.read() as session:
        held = [session.get(ServiceRequest, i).reserved_amount for i in ids]
    assert sorted(held, key=lambda v: v or 0) == [None, 10000]


def test_the_console_warns_at_eighty_percent_and_refuses_bad_budgets(make_app):
    app = make_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="live")
    agency = agency_of(app, key)
    request_id = submit(app, key, MEDICINE, _medicine())["id"]
    admin = sign_in(app, "admin")
    admin.get(f"/console/agencies/{agency}/budgets")
    response = admin.post(f"/console/agencies/{agency}/budgets",
                          {"service": "medicine_delivery", "period": this_month(app),
                           "limit": "10000"})
    assert response.status_code == 302
    page = admin.get(f"/console/agencies/{agency}/budgets").get_data(as_text=True)
    assert "Warning" not in page

    assert costs.reserve(gateway, request_id, 8000)
    page = admin.get(f"/console/agencies/{agency}/budgets").get_data(as_text=True)
    assert "Warning: 80% of the" in page and "IDR8,000" in page

    for bad in ({"period": "2026-13"}, {"limit": "-5"}, {"limit": "1e9"},
                {"limit": "9" * 20}, {"service": "no_such_service"}):
        form = {"service": "medicine_delivery", "period": "2026", "limit": "5", **bad}
        assert admin.post(f"/console/agencies/{agency}/budgets", form).status_code == 422
    assert admin.post("/console/agencies/no-such-agency/budgets",
                      {"service": "medicine_delivery", "period": "2026",
                       "limit": "5"}).status_code == 404
    assert admin.post(f"/console/agencies/{agency}/budgets",
                      {"service": "medicine_delivery", "period": "2026", "limit": "5"},
                      csrf=False).status_code in (400, 403)
    with gateway.db.read() as session:
        assert [b.period for b in session.scalars(select(Budget))] == [this_month(app)]


def test_simulator_answers_bad_price_queries_like_gosend(gateway_gosend):
    headers = {"Client-ID": GOSEND_TEST_CREDENTIALS["client_id"],
               "Pass-Key": GOSEND_TEST_CREDENTIALS["pass_key"]}
    url = f"{gateway_gosend.url}/gokilat/v10/calculate/price"
    assert requests.get(url, params={"origin": "x", "destination": "1,1"}, headers=headers,
                        timeout=5).status_code == 400
    far = requests.get(url, params={"origin": "-8.2,114.3", "destination": "-7.2,112.7",
                                    "paymentType": "3"}, headers=headers, timeout=5).json()
    assert far["Instant"]["serviceable"] is False


def test_each_providers_report_gives_its_price_and_nonsense_gives_none():
    import json

    from gateway.couriers.gosend import mapping as gosend
    from gateway.couriers.grabexpress import mapping as grab
    from gateway.couriers.lalamove import mapping as lalamove

    hook = {"entity_id": "GK-11-1", "status": "delivered", "event_id": "e1", "price": 20000.0}
    assert gosend.parse_webhook(json.dumps(hook).encode()).details["price"] == 20000
    assert gosend.parse_status({"orderNo": "GK-11-1", "status": "delivered",
                                "totalPrice": 18500}).details["price"] == 18500
    details = grab.parse_status({"deliveryID": "IN-1", "status": "COMPLETED",
                                 "quote": {"amount": 22500.0,
                                           "currency": {"code": "IDR"}}}).details
    assert (details["price"], details["currency"]) == (22500, "IDR")
    order = {"orderId": "1234567890123456789", "status": "COMPLETED",
             "priceBreakdown": {"total": "24000", "currency": "IDR"}}
    assert lalamove.parse_order({"data": order}).details["price"] == 24000
    for nonsense in ("-5", "abc", None, "1e30", [], {"x": 1}):
        assert "price" not in gosend.parse_webhook(json.dumps(
            {**hook, "price": nonsense}).encode()).details
        assert "price" not in lalamove.parse_order({"data": {
            **order, "priceBreakdown": {"total": nonsense}}}).details
        assert "price" not in grab.parse_status({"deliveryID": "IN-1", "status": "COMPLETED",
                                                 "quote": {"amount": nonsense}}).details


def test_the_own_fleet_quotes_its_configured_tariff_in_the_regions_currency(make_app):
    app = make_app(couriers={"own_fleet": {"enabled": True,
                                           "tariff": {"base": 5000, "per_km": 2000}}},
                   services={"medicine_delivery": {"couriers": ["own_fleet"]}})
    key = new_key(app, key_type="test")
    request_id = submit(app, key, MEDICINE, _medicine())["id"]
    wait_for_status(app, request_id, BOOKED)
    assert detail(app, key, request_id)["cost"] == {
        "quoted": 5000 + 2000 * 1, "final": None, "currency": "IDR", "provider": "own_fleet"}
    (quote,) = quotes_of(app, request_id)
    assert (quote.duration_minutes, quote.distance_m) == (20 + 2, 711)

    with pytest.raises(Exception, match="tariff"):
        make_app(couriers={"own_fleet": {"tariff": {"base": -1}}})


def test_a_request_booked_before_its_budget_existed_never_drives_the_budget_negative(make_app):
    app = make_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="live")
    agency = agency_of(app, key)
    request_id = submit(app, key, MEDICINE, _medicine())["id"]
    assert costs.reserve(gateway, request_id, 7000)          # no budget: nothing is held
    costs.set_budget(gateway, agency, "medicine_delivery", this_month(app), 10000,
                     actor="test")
    costs.release_by_id(gateway, request_id)
    assert budget_row(app, agency, this_month(app)).reserved == 0

    # the month's budget only: the year's, set later, is not touched by this request
    assert costs.reserve(gateway, request_id, 7000)
    costs.set_budget(gateway, agency, "medicine_delivery", this_month(app)[:4], 10000,
                     actor="test")
    costs.release_by_id(gateway, request_id)
    assert budget_row(app, agency, this_month(app)).reserved == 0
    assert budget_row(app, agency, this_month(app)[:4]).reserved == 0
