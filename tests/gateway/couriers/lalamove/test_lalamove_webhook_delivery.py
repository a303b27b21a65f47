"""How Lalamove delivers webhooks, and that the gateway keeps up with it (webhook tutorial
v1.4): the empty POST that registers a URL, retries for 24 hours with the timestamp of the
first sending, the URL disabled after 10 failures, and an order replaced under a new id seen
by polling alone. Each test drives the simulator, which behaves as the tutorial says."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from gateway.couriers import CourierRejected
from gateway.couriers.lalamove import mapping
from gateway.couriers.lalamove.simulator import MAX_SENDINGS, RETRY_DELAYS, LalamoveSimulator
from gateway.models import CourierAttempt, ProviderEventRecord, ServiceRequest
from gateway.statuses import Status
from gateway.sweep import sweep_once
from gateway.testing import drain, free_port, wait_for_status
from tests.conftest import new_key
from tests.console.conftest import sign_in
from tests.console.page import by_id
from tests.gateway.couriers.helpers import bookings, detail, sim_get, sim_post
from tests.gateway.couriers.lalamove.test_lalamove import (
    CREDENTIALS,
    WEBHOOK_PATH,
    adapter,
    calls,
    parcel,
    signed_webhook,
    submit,
    wait_until,
)
from tests.gateway.test_metrics import samples, value


def scrape(app) -> dict:
    return samples(app.test_client().get("/metrics").get_data(as_text=True))


def inbox_rows(app) -> int:
    with app.extensions["gateway"].db.read() as session:
        return session.scalar(select(func.count()).select_from(ProviderEventRecord))


def timeline(app, key, request_id) -> list[tuple[str, bool]]:
    return [(e["status"], e["applied"]) for e in detail(app, key, request_id)["timeline"]]


def set_sim_status(sim, order_id, status) -> None:
    requests.post(f"{sim.url}/_sim/bookings/{order_id}/status", json={"status": status},
                  timeout=5).raise_for_status()


def stalled_booking(lalamove_app, lalamove_sim, note="[sim:stall]", **overrides):
    """An app, a test key, and a parcel booked at Lalamove that moves only when the test
    says so. :return: (app, key, request id, Lalamove order id)"""
    app = lalamove_app(**overrides)
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note=note))
    wait_for_status(app, request_id, "booked")
    return app, key, request_id, bookings(lalamove_sim)[0]["orderId"]


# -- 1. registering the webhook URL: Lalamove's empty POST ------------------------------------
def test_lalamove_registers_our_webhook_url_because_its_empty_probe_is_answered_200(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    url = f"{app.server_url}{WEBHOOK_PATH}"
    rows_before = inbox_rows(app)

    adapter(lalamove_sim).register_webhook(url)

    (probe,) = [w for w in sim_get(lalamove_sim, "/_sim/webhooks") if w.get("probe")]
    assert (probe["url"], probe["answer"]) == (url, 200)
    (patch,) = calls(lalamove_sim, "PATCH", "/v3/webhook")
    assert patch["json"] == {"data": {"url": url}}
    assert lalamove_sim.webhook_url == url
    assert inbox_rows(app) == rows_before, "a probe is no report: nothing is stored"
    scraped = scrape(app)
    assert value(scraped, "gateway_webhook_probes_total", courier="lalamove_sandbox") == 1
    assert not any(name == "gateway_webhooks_rejected_total" for name, _ in scraped)


def test_a_url_that_refuses_the_probe_is_not_registered(lalamove_app, lalamove_sim):
    app = lalamove_app()
    lalamove_sim.webhook_url = None
    with pytest.raises(CourierRejected, match="ERR_INVALID_RESPONSE"):
        adapter(lalamove_sim).register_webhook(f"{app.server_url}/webhooks/no_such_courier")
    assert lalamove_sim.webhook_url is None


def test_the_probe_opens_no_hole_bodies_with_content_are_still_verified(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    url = f"{app.server_url}{WEBHOOK_PATH}"
    rows_before = inbox_rows(app)
    # Probes never count against their address: many of them, then a forgery, gets 401.
    for _ in range(40):
        assert requests.post(url, data=b"", timeout=5).status_code == 200
    assert requests.post(url, data=b" \r\n", timeout=5).status_code == 200
    for body in (b"{}", b'{"data":{}}', b"null", b"0",
                 b'{"eventType":"ORDER_STATUS_CHANGED","data":{"order":{"orderId":"1",'
                 b'"status":"COMPLETED"}}}'):
        response = requests.post(url, data=body, timeout=5)
        assert response.status_code == 401, body
        assert response.json()["code"] == "webhook_rejected"
    assert inbox_rows(app) == rows_before
    scraped = scrape(app)
    assert value(scraped, "gateway_webhook_probes_total", courier="lalamove_sandbox") == 41
    assert value(scraped, "gateway_webhooks_rejected_total", courier="lalamove_sandbox",
                 reason="unverified") == 5
    # Another courier's entry takes no empty body for a probe.
    other = requests.post(f"{app.server_url}/webhooks/own_fleet", data=b"", timeout=5)
    assert other.status_code == 401


# -- 2. retries for 24 hours ------------------------------------------------------------------
def test_an_update_lalamove_retries_20_hours_later_is_accepted_and_applied_once(
        lalamove_app, lalamove_sim):
    app, key, request_id, order_id = stalled_booking(lalamove_app, lalamove_sim)
    set_sim_status(lalamove_sim, order_id, "ON_GOING")
    wait_for_status(app, request_id, "driver_assigned")

    # Our gateway is unreachable when the order is picked up: Lalamove will try again.
    registered, lalamove_sim.webhook_url = (lalamove_sim.webhook_url,
                                            f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")
    set_sim_status(lalamove_sim, order_id, "PICKED_UP")
    assert len(lalamove_sim.retries) == 1
    lalamove_sim.webhook_url = registered

    # The retry that falls due 20 hours later, signed with its first sending's timestamp.
    answer = sim_post(lalamove_sim, "/_sim/webhooks/retry", {"elapsed_seconds": 20 * 3600})
    assert answer == {"answers": [200], "disabled": False}
    retried = sim_get(lalamove_sim, "/_sim/webhooks")[-1]["body"]
    assert time.time() - retried["timestamp"] >= 20 * 3600 - 5
    wait_for_status(app, request_id, "picked_up")

    # The same update once more (its answer was lost): a duplicate, applied once.
    again = sim_post(lalamove_sim, "/_sim/webhooks/resend",
                     {"index": -1, "elapsed_seconds": 20 * 3600 + 60})
    assert again["answer"] == 200
    drain(app)
    assert [s for s, applied in timeline(app, key, request_id) if applied].count(
        "picked_up") == 1
    with app.extensions["gateway"].db.read() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEventRecord).where(
            ProviderEventRecord.event_key == retried["eventId"])) == 1


def test_a_20_hour_old_retry_of_an_earlier_status_never_moves_the_request_back(
        lalamove_app, lalamove_sim):
    app, key, request_id, order_id = stalled_booking(lalamove_app, lalamove_sim)
    set_sim_status(lalamove_sim, order_id, "ON_GOING")
    # applied before the next is sent (the simulator sends from several threads: otherwise
    # "picked up" may overtake it, and then it was never the one that applied)
    wait_for_status(app, request_id, "driver_assigned")
    set_sim_status(lalamove_sim, order_id, "PICKED_UP")
    wait_for_status(app, request_id, "picked_up")
    sent = [w for w in sim_get(lalamove_sim, "/_sim/webhooks") if w.get("body")]
    on_going = next(i for i, w in enumerate(sent)
                    if w["body"]["data"]["order"]["status"] == "ON_GOING")

    # Lalamove's retry of "driver assigned", 20 hours late, arrives after "picked up"
    # under an eventId we have not seen (its first sending never reached us).
    lalamove_sim.webhooks[on_going]["body"]["eventId"] = "RETRY-OF-ON-GOING"
    answer = sim_post(lalamove_sim, "/_sim/webhooks/resend",
                      {"index": on_going, "elapsed_seconds": 20 * 3600})
    assert answer["answer"] == 200
    drain(app)
    body = detail(app, key, request_id)
    assert body["status"] == "picked_up"
    late = [e for e in body["timeline"] if e["raw_status"] == "ON_GOING"]
    assert [e["applied"] for e in late] == [True, False], "recorded, and changed nothing"


def test_a_signed_body_sent_again_under_another_event_id_is_a_duplicate_not_a_new_report(
        lalamove_app, lalamove_sim):
    app, key, request_id, order_id = stalled_booking(lalamove_app, lalamove_sim)
    url = f"{app.server_url}{WEBHOOK_PATH}"
    # The eventId is not signed: an attacker who saw a genuine body can swap it.
    genuine = signed_webhook({"order": {"orderId": order_id, "status": "ON_GOING"}},
                             event_id="EVT-GENUINE-1", timestamp=int(time.time()) - 3600)
    first = requests.post(url, data=genuine, timeout=5)
    assert first.json() == {"received": 1, "duplicates": 0}
    for n in range(3):
        replayed = requests.post(url, timeout=5, data=genuine.replace(
            b'"EVT-GENUINE-1"', f'"EVT-REPLAY-{n}"'.encode()))
        assert replayed.status_code == 200
        assert replayed.json() == {"received": 0, "duplicates": 1}
    # The inbox's rows of this body: the genuine one only. (Counting every row raced with
    # the simulator's own ORDER_CREATED webhook, which may land at any moment here.)
    with app.extensions["gateway"].db.read() as session:
        keys = session.scalars(select(ProviderEventRecord.event_key).where(
            ProviderEventRecord.event_key.like("EVT-%"))).all()
    assert keys == ["EVT-GENUINE-1"]
    wait_for_status(app, request_id, "driver_assigned")
    assert [s for s, applied in timeline(app, key, request_id) if applied].count(
        "driver_assigned") == 1


def test_signed_webhooks_outside_the_retry_window_or_from_the_future_are_refused(
        lalamove_app, lalamove_sim):
    app, key, request_id, order_id = stalled_booking(lalamove_app, lalamove_sim)
    url = f"{app.server_url}{WEBHOOK_PATH}"
    on_going = {"order": {"orderId": order_id, "status": "ON_GOING"}}
    now = int(time.time())
    for why, timestamp in (("older than 24 h and the margin", now - 27 * 3600),
                           ("an hour in the future", now + 3600)):
        response = requests.post(url, timeout=5, data=signed_webhook(
            on_going, timestamp=timestamp, event_id=f"window-{timestamp}"))
        assert response.status_code == 401, why
    drain(app)
    assert detail(app, key, request_id)["status"] == "booked"
    # Clock skew of a minute, and a retry 23 hours late, are taken.
    for timestamp in (now + 60, now - 23 * 3600):
        response = requests.post(url, timeout=5, data=signed_webhook(
            on_going, timestamp=timestamp, event_id=f"window-{timestamp}"))
        assert response.status_code == 200
    wait_for_status(app, request_id, "driver_assigned")


def test_the_simulator_retries_10_times_within_24_hours_then_disables_the_url():
    assert MAX_SENDINGS == 10
    assert all(b == 2 * a for a, b in zip(RETRY_DELAYS, RETRY_DELAYS[1:], strict=False))
    assert sum(RETRY_DELAYS) < 24 * 3600
    assert LalamoveSimulator.sendings_by(0) == 1
    assert LalamoveSimulator.sendings_by(20 * 3600) == 9
    assert LalamoveSimulator.sendings_by(sum(RETRY_DELAYS)) == 10

    sim = LalamoveSimulator(**CREDENTIALS,
                            webhook_url=f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")
    event = {"eventId": "E-1", "eventType": "ORDER_STATUS_CHANGED", "eventVersion": "v3",
             "data": {"order": {"orderId": "1", "status": "ON_GOING"}}}
    sim._send(event)
    (pending,) = sim.retries
    assert pending["sendings"] == 1
    assert sim.retry_after(event, 20 * 3600) != 200 and not sim.webhook_disabled
    sim.retries.clear()
    assert sim.retry_after(event, sum(RETRY_DELAYS)) != 200
    assert sim.webhook_disabled, "the 10th failure disables the URL"
    assert sim._send(event) == "disabled"


# -- 3. ORDER_REPLACED seen by polling alone ----------------------------------------------------
def poll_now(app, request_id) -> None:
    """Make the request due for a poll, and let the sweep and the jobs poll it."""
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        record.updated_at = record.updated_at.replace(year=2020)
    sweep_once(gateway)
    drain(app)


def test_an_order_replaced_while_webhooks_are_off_is_followed_to_its_new_id_by_polling(
        lalamove_app, lalamove_sim):
    app, key, request_id, old_id = stalled_booking(
        lalamove_app, lalamove_sim, note="[sim:replace] [sim:stall]",
        dispatch={"poll_after_seconds": 1})
    lalamove_sim.webhook_url = None  # webhooks off: polling alone follows the booking
    set_sim_status(lalamove_sim, old_id, "ON_GOING")  # Lalamove replaces it now
    drain(app)
    old, new = bookings(lalamove_sim)
    assert (old["replaced_by"], new["replaces"]) == (new["orderId"], old_id)

    poll_now(app, request_id)
    body = detail(app, key, request_id)
    assert (body["provider"], body["provider_reference"]) == ("lalamove_sandbox",
                                                              new["orderId"])
    assert body["status"] == "driver_assigned"
    assert any(f"replaced booking {old_id} by {new['orderId']}" in (e["detail"] or "")
               for e in body["timeline"])

    # Later statuses of the new order id are read from it and applied.
    for status in ("PICKED_UP", "COMPLETED"):
        set_sim_status(lalamove_sim, new["orderId"], status)
        poll_now(app, request_id)
    body = detail(app, key, request_id)
    assert body["status"] == "delivered"
    assert calls(lalamove_sim, "GET", f"/v3/orders/{new['orderId']}"), "polled by its new id"
    assert {w["body"]["eventType"] for w in sim_get(lalamove_sim, "/_sim/webhooks")} <= {
        "ORDER_CREATED"}, "nothing since webhooks were turned off"
    with app.extensions["gateway"].db.read() as session:
        (attempt,) = session.scalars(select(CourierAttempt).where(
            CourierAttempt.request_id == request_id)).all()
        assert attempt.provider_reference == new["orderId"]
    assert [a for a in body["timeline"] if "trying the next courier" in (a["detail"] or "")
            ] == [], "no failover"
    assert len(calls(lalamove_sim, "POST", "/v3/orders")) == 1


# -- 2b. alerting when a provider's webhooks go silent --------------------------------------------
def test_a_courier_whose_webhooks_go_silent_while_it_carries_bookings_is_flagged(
        lalamove_app, lalamove_sim):
    app, key, request_id, order_id = stalled_booking(
        lalamove_app, lalamove_sim, webhooks={"silence_alert_seconds": 600})
    gateway = app.extensions["gateway"]
    wait_until(lambda: inbox_rows(app) == 1)  # its ORDER_CREATED webhook was accepted
    scraped = scrape(app)
    assert value(scraped, "gateway_courier_active_bookings", courier="lalamove_sandbox") == 1
    assert value(scraped, "gateway_webhook_silent", courier="lalamove_sandbox") == 0
    assert value(scraped, "gateway_webhook_last_accepted_age_seconds",
                 courier="lalamove_sandbox") < 60
    assert value(scraped, "gateway_webhook_silent", courier="own_fleet") is None, \
        "the own fleet takes no webhooks"

    # Our URL fails every sending of the next update for a day: Lalamove disables it.
    registered, lalamove_sim.webhook_url = (lalamove_sim.webhook_url,
                                            f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")
    set_sim_status(lalamove_sim, order_id, "ON_GOING")
    answer = sim_post(lalamove_sim, "/_sim/webhooks/retry",
                      {"elapsed_seconds": sum(RETRY_DELAYS)})
    assert answer["disabled"] is True
    lalamove_sim.webhook_url = registered
    set_sim_status(lalamove_sim, order_id, "PICKED_UP")  # not sent: the URL is disabled
    # ... and an hour goes by.
    with gateway.db.write() as session:
        for row in session.scalars(select(ProviderEventRecord)):
            row.received_at = row.received_at.replace(year=2020)
        session.get(ServiceRequest, request_id).created_at = \
            session.get(ServiceRequest, request_id).created_at.replace(year=2020)

    scraped = scrape(app)
    assert value(scraped, "gateway_webhook_silent", courier="lalamove_sandbox") == 1
    assert value(scraped, "gateway_webhook_last_accepted_age_seconds",
                 courier="lalamove_sandbox") > 3600
    page = sign_in(app, "operator").get("/console/dashboard")
    warning = by_id(page, "webhook-silent-lalamove_sandbox").text
    assert "lalamove_sandbox carries 1 booking but has sent no webhook" in warning
    assert "register it again" in warning

    # Once it carries nothing, silence is no alarm.
    with gateway.db.write() as session:
        session.get(ServiceRequest, request_id).status = "delivered"
    assert value(scrape(app), "gateway_webhook_silent", courier="lalamove_sandbox") == 0
    page = sign_in(app, "operator").get("/console/dashboard")
    assert 'id="webhook-silent-' not in page.get_data(as_text=True)


# -- the pure parts ------------------------------------------------------------------------------
def test_the_retry_window_takes_a_day_old_timestamp_and_only_minutes_of_future():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    window = {"max_age": timedelta(hours=26), "max_ahead": timedelta(minutes=5)}
    for age in (timedelta(0), timedelta(minutes=10), timedelta(hours=20), timedelta(hours=26)):
        assert mapping.within_retry_window(now - age, now, **window), age
    for off in (-timedelta(hours=26, seconds=1), timedelta(minutes=5, seconds=1),
                timedelta(hours=20)):
        assert not mapping.within_retry_window(now + off, now, **window), off


def test_a_poll_answered_for_another_order_id_reports_the_replacement_with_its_status():
    answer = {"data": {"orderId": "3000000000000000002", "status": "PICKED_UP",
                       "metadata": {"client_reference": "req-1-1"}}}
    event = mapping.parse_order(answer, asked="3000000000000000001")
    assert (event.provider_reference, event.our_reference) == ("3000000000000000001",
                                                               "req-1-1")
    assert event.details["new_provider_reference"] == "3000000000000000002"
    assert (event.raw_status, event.status) == ("PICKED_UP", Status.PICKED_UP)
    same = mapping.parse_order(answer, asked="3000000000000000002")
    assert same.provider_reference == "3000000000000000002"
    assert "new_provider_reference" not in same.details
