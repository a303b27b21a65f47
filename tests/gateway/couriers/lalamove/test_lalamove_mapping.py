"""The Lalamove mapping is pure code: tested with data, no network."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.couriers.lalamove import mapping
from gateway.couriers.lalamove.simulator import LIFECYCLE, TERMINAL
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.statuses import Status

SECRET = "sk_test_worked-example"
ORDER = DeliveryOrder(
    reference="req-1",
    pickup=Place(address="Jl. Kemiren No. 12, Glagah", lat=-8.2163, lng=114.3167,
                 contact=Contact("Pak Slamet", "+6281234567891")),
    dropoffs=(Place(address="Jl. Ahmad Yani No. 80, Banyuwangi", lat=-8.219, lng=114.369,
                    contact=Contact("Dewi Lestari", "+6285234567890"), note="Pagar hijau"),
              Place(address="Jl. Brawijaya No. 3, Banyuwangi", lat=-8.2301, lng=114.3602,
                    contact=Contact("Siti Aminah", "+6281234567890"))),
    package=Package(description="Paket obat tersegel #req-1"),
    requirements=frozenset({"multi_drop"}))
NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
QUOTATION = mapping.Quotation(quotation_id="3000000000000000001",
                              stop_ids=("3000000000000000002", "3000000000000000003",
                                        "3000000000000000004"),
                              expires_at=NOW + timedelta(minutes=5), price=21500)

# Every status the reference lists (section 4.3), with what it must become.
REFERENCE_STATUSES = {
    "ASSIGNING_DRIVER": Status.BOOKED, "ON_GOING": Status.DRIVER_ASSIGNED,
    "PICKED_UP": Status.PICKED_UP, "COMPLETED": Status.DELIVERED,
    "CANCELED": Status.CANCELLED, "REJECTED": Status.NO_DRIVER, "EXPIRED": Status.NO_DRIVER,
}


def envelope(data: dict, *, event_type="ORDER_STATUS_CHANGED", event_id="EVT-1",
             timestamp=1764291600) -> bytes:
    data_text = json.dumps(data, separators=(",", ":"))
    signed = f"{timestamp}\r\nPOST\r\n/webhooks/lalamove_sandbox\r\n\r\n{data_text}"
    head = json.dumps({"apiKey": "pk_test", "timestamp": timestamp,
                       "signature": hmac.new(SECRET.encode(), signed.encode(),
                                             hashlib.sha256).hexdigest(),
                       "eventId": event_id, "eventType": event_type}, separators=(",", ":"))
    return (head[:-1] + ',"data":' + data_text + "}").encode()


# -- statuses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, ours", sorted(REFERENCE_STATUSES.items()))
def test_every_lalamove_status_in_the_reference_is_mapped(raw, ours):
    assert raw in mapping.STATUS_MAP
    assert mapping.map_status(raw) == ours


def test_the_status_map_holds_exactly_the_reference_statuses():
    assert set(mapping.STATUS_MAP) == set(REFERENCE_STATUSES)


def test_the_simulator_sends_only_statuses_the_adapter_maps():
    assert set(LIFECYCLE) | TERMINAL <= set(mapping.STATUS_MAP)


def test_an_unknown_status_is_noted_not_guessed():
    assert mapping.map_status("TELEPORTED") is None
    assert mapping.map_status("CANCELLED") is None  # Lalamove spells it CANCELED


# -- request signing -----------------------------------------------------------------------------
def test_the_signature_matches_a_worked_example_computed_by_hand():
    body = '{"data":{"serviceType":"MOTORCYCLE"}}'
    by_hand = hmac.new(SECRET.encode(),
                       b'1700000000000\r\nPOST\r\n/v3/quotations\r\n\r\n'
                       b'{"data":{"serviceType":"MOTORCYCLE"}}', hashlib.sha256).hexdigest()
    assert by_hand == "9508491b2769fe59f2332e175f5d23427ee726a71a00b33a650242f0204750a3"
    assert mapping.signature(SECRET, 1700000000000, "POST", "/v3/quotations", body) == by_hand
    assert mapping.authorization_header("pk_test", SECRET, 1700000000000, "POST",
                                        "/v3/quotations", body) == \
        f"hmac pk_test:1700000000000:{by_hand}"


def test_a_call_without_a_body_signs_an_empty_body():
    by_hand = hmac.new(SECRET.encode(),
                       b"1700000000000\r\nGET\r\n/v3/orders/3000000000000000001\r\n\r\n",
                       hashlib.sha256).hexdigest()
    assert by_hand == "fcbdf74bbcfd53ea8989cea42561ef378be5e77f6bcbe135ec7da76161718766"
    assert mapping.signature(SECRET, 1700000000000, "get", "/v3/orders/3000000000000000001",
                             "") == by_hand


def test_every_call_carries_authorization_market_request_id_and_content_type():
    headers = mapping.request_headers(api_key="pk_test", secret=SECRET, market="ID",
                                      method="DELETE", path="/v3/orders/1", body_text="",
                                      timestamp_ms=1700000000000, request_id="rid-1")
    assert headers == {
        "Authorization": mapping.authorization_header("pk_test", SECRET, 1700000000000,
                                                      "DELETE", "/v3/orders/1", ""),
        "Market": "ID", "Request-ID": "rid-1", "Content-Type": "application/json"}


def test_a_changed_body_changes_the_signature():
    one = mapping.signature(SECRET, 1, "POST", "/v3/orders", '{"data":{"a":1}}')
    other = mapping.signature(SECRET, 1, "POST", "/v3/orders", '{"data": {"a": 1}}')
    assert one != other


# -- payloads ------------------------------------------------------------------------------------
def test_the_quotation_has_the_pickup_then_every_dropoff_with_string_coordinates():
    data = mapping.quotation_payload(ORDER, service_type="MOTORCYCLE", language="id_ID")["data"]
    assert (data["serviceType"], data["language"], data["isRouteOptimized"]) == (
        "MOTORCYCLE", "id_ID", False)
    assert data["stops"] == [
        {"coordinates": {"lat": "-8.216300", "lng": "114.316700"},
         "address": "Jl. Kemiren No. 12, Glagah"},
        {"coordinates": {"lat": "-8.219000", "lng": "114.369000"},
         "address": "Jl. Ahmad Yani No. 80, Banyuwangi"},
        {"coordinates": {"lat": "-8.230100", "lng": "114.360200"},
         "address": "Jl. Brawijaya No. 3, Banyuwangi"}]


def test_the_order_names_the_quotation_its_stops_and_carries_our_reference():
    data = mapping.order_payload(QUOTATION, ORDER, "req-1-1")["data"]
    assert data["quotationId"] == "3000000000000000001"
    assert data["sender"] == {"stopId": "3000000000000000002", "name": "Pak Slamet",
                              "phone": "+6281234567891"}
    assert data["recipients"] == [
        {"stopId": "3000000000000000003", "name": "Dewi Lestari", "phone": "+6285234567890",
         "remarks": "Paket obat tersegel #req-1 (SEGEL: jangan dibuka) - Pagar hijau"},
        {"stopId": "3000000000000000004", "name": "Siti Aminah", "phone": "+6281234567890",
         "remarks": "Paket obat tersegel #req-1 (SEGEL: jangan dibuka)"}]
    assert data["metadata"] == {"client_reference": "req-1-1"}
    assert data["isPODEnabled"] is True


def test_the_payloads_hold_nothing_the_order_does_not():
    text = json.dumps([mapping.quotation_payload(ORDER), mapping.order_payload(
        QUOTATION, ORDER, "req-1-1")]).lower()
    for forbidden in ("nik", "3510011203650002", "diagnos", "prescription", "amlodipine"):
        assert forbidden not in text


def test_the_body_is_serialised_once_compactly():
    assert mapping.encode({"data": {"a": [1, "x"]}}) == '{"data":{"a":[1,"x"]}}'


def test_an_order_for_a_quotation_with_other_stops_is_refused():
    short = mapping.Quotation("1", ("2", "3"), NOW)
    with pytest.raises(ValueError):
        mapping.order_payload(short, ORDER, "req-1-1")


# -- answers -------------------------------------------------------------------------------------
def test_a_quotation_answer_gives_its_id_stops_expiry_and_price():
    body = {"data": {"quotationId": "3000000000000000001", "expiresAt": "2026-11-28T01:05:00.00Z",
                     "stops": [{"stopId": "11"}, {"stopId": "12"}, {"stopId": "13"}],
                     "priceBreakdown": {"total": "21500", "currency": "IDR"},
                     "distance": {"value": "2400", "unit": "m"}}}
    quotation = mapping.parse_quotation(body, received_at=NOW, stops=3)
    assert quotation.stop_ids == ("11", "12", "13")
    assert quotation.expires_at == NOW + timedelta(minutes=5)
    assert (quotation.price, quotation.distance_km) == (21500, 2.4)
    quote = mapping.parse_quote("lalamove", quotation)
    assert (quote.price, quote.currency, quote.serviceable) == (21500, "IDR", True)


def test_a_quotation_without_expiry_is_taken_to_hold_five_minutes():
    body = {"data": {"quotationId": "1", "stops": [{"stopId": "2"}, {"stopId": "3"}]}}
    assert mapping.parse_quotation(body, received_at=NOW, stops=2).expires_at == \
        NOW + timedelta(minutes=5)


@pytest.mark.parametrize("body", [{}, {"data": {"stops": []}},
                                  {"data": {"quotationId": "1", "stops": [{"stopId": "2"}]}}])
def test_a_quotation_without_an_id_or_a_stop_per_place_is_refused(body):
    with pytest.raises(ValueError):
        mapping.parse_quotation(body, received_at=NOW, stops=2)


@pytest.mark.parametrize("expires_in, stale", [(-1, True), (0, True), (14, True), (15, True),
                                               (16, False), (300, False)])
def test_a_quotation_is_stale_when_it_expires_within_the_margin(expires_in, stale):
    quotation = mapping.Quotation("1", ("2", "3"), NOW + timedelta(seconds=expires_in))
    assert mapping.is_stale(quotation, NOW, margin_seconds=15) is stale


def test_an_order_answer_keeps_the_19_digit_id_as_a_string():
    booking = mapping.parse_booking("lalamove_sandbox", {"data": {
        "orderId": "3000000000000000007", "status": "ASSIGNING_DRIVER"}})
    assert (booking.provider_reference, booking.raw_status, booking.status) == (
        "3000000000000000007", "ASSIGNING_DRIVER", Status.BOOKED)
    with pytest.raises(ValueError):
        mapping.parse_booking("lalamove_sandbox", {"data": {"orderId": 3.0000000000000003e18}})


def test_errors_keep_the_provider_code():
    body = {"errors": [{"id": "ERR_CANCELLATION_FORBIDDEN", "message": "Driver on the way"}]}
    assert mapping.first_error(body) == ("ERR_CANCELLATION_FORBIDDEN", "Driver on the way")
    assert mapping.error_text(body) == "ERR_CANCELLATION_FORBIDDEN: Driver on the way"
    assert mapping.first_error({"message": "no"}) == (None, None)


def test_a_polled_order_is_keyed_per_order_and_status_with_proof_once_completed():
    event = mapping.parse_order({"data": {
        "orderId": "3000000000000000007", "status": "COMPLETED",
        "metadata": {"client_reference": "req-1-1"},
        "stops": [{"stopId": "1"},
                  {"stopId": "2", "POD": {"status": "DELIVERED", "image": "http://x/2.jpg",
                                          "deliveredAt": "2026-11-28T01:20:00.000Z"}},
                  {"stopId": "3", "POD": {"status": "DELIVERED", "image": "http://x/3.jpg",
                                          "deliveredAt": "2026-11-28T01:30:00.000Z"}}]}})
    assert (event.event_key, event.status, event.our_reference) == (
        "status:3000000000000000007:COMPLETED", Status.DELIVERED, "req-1-1")
    assert event.details["proof"] == {"photo_url": "http://x/3.jpg",
                                      "delivered_at": "2026-11-28T01:30:00.000Z",
                                      "photo_urls": ["http://x/2.jpg", "http://x/3.jpg"]}
    # the neutral proof fields: every image, and the last drop-off's time (the courier's)
    assert event.proof_urls == ("http://x/2.jpg", "http://x/3.jpg")
    assert event.delivered_at.isoformat() == "2026-11-28T01:30:00+00:00"


# -- webhooks ------------------------------------------------------------------------------------
def test_the_webhook_signature_is_over_the_raw_data_text_not_a_reserialisation():
    data = {"order": {"orderId": "3000000000000000007", "status": "ON_GOING"},
            "updatedAt": "2026-11-28T01:00:00.000Z"}
    raw = envelope(data)
    read = mapping.read_webhook(raw)
    assert read.raw_data == json.dumps(data, separators=(",", ":"))
    signed = mapping.webhook_signature(SECRET, read.body["timestamp"],
                                       "/webhooks/lalamove_sandbox", read.raw_data)
    assert signed == read.body["signature"]
    reserialised = mapping.webhook_signature(SECRET, read.body["timestamp"],
                                             "/webhooks/lalamove_sandbox",
                                             json.dumps(read.data))
    assert reserialised != read.body["signature"]


def test_the_raw_data_text_is_lifted_exactly_whatever_the_spacing():
    raw = b'{ "apiKey" : "pk",\n "data" :  {"a": "\\u00e9", "b": [1, 2.50]} , "x": null }'
    read = mapping.read_webhook(raw)
    assert read.raw_data == '{"a": "\\u00e9", "b": [1, 2.50]}'
    assert read.data == {"a": "é", "b": [1, 2.5]}


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"data": 1}', b'{"apiKey": "pk"}',
                                 b'{"data": {}, "data": {"a": 1}}', b'{"data": {}} trailing',
                                 b'{"data": {}', b"\xff"])
def test_bodies_that_are_not_one_object_with_one_data_object_are_refused(raw):
    with pytest.raises(ValueError):
        mapping.read_webhook(raw)


def test_the_webhook_timestamp_is_read_in_seconds_or_milliseconds():
    assert mapping.webhook_time(1764291600) == datetime(2025, 11, 28, 1, 0, tzinfo=UTC)
    assert mapping.webhook_time("1764291600000") == datetime(2025, 11, 28, 1, 0, tzinfo=UTC)
    assert mapping.webhook_time("yesterday") is None
    assert mapping.webhook_time(None) is None


def test_a_status_change_becomes_a_report_keyed_by_its_event_id():
    (event,) = mapping.parse_webhook(mapping.read_webhook(envelope({
        "order": {"orderId": "3000000000000000007", "status": "PICKED_UP",
                  "metadata": {"client_reference": "req-1-1"}},
        "updatedAt": "2026-11-28T01:00:00.000Z"}, event_id="0ACB1A05-3F69")))
    assert (event.event_key, event.provider_reference, event.our_reference) == (
        "0ACB1A05-3F69", "3000000000000000007", "req-1-1")
    assert (event.raw_status, event.status) == ("PICKED_UP", Status.PICKED_UP)
    assert event.occurred_at == NOW
    assert "proof" not in event.details


def test_a_completed_order_reports_its_proof_of_delivery():
    (event,) = mapping.parse_webhook(mapping.read_webhook(envelope({"order": {
        "orderId": "3000000000000000007", "status": "COMPLETED",
        "stops": [{"stopId": "1"}, {"stopId": "2", "POD": {
            "status": "DELIVERED", "image": "http://x/2.jpg",
            "deliveredAt": "2026-11-28T01:20:00.000Z"}}]}})))
    assert event.status == Status.DELIVERED
    assert event.details["proof"] == {"photo_url": "http://x/2.jpg",
                                      "delivered_at": "2026-11-28T01:20:00.000Z"}


def test_a_replaced_order_is_reported_on_the_previous_id_naming_the_new_one():
    (event,) = mapping.parse_webhook(mapping.read_webhook(envelope({
        "order": {"orderId": "3000000000000000009", "status": "ON_GOING",
                  "metadata": {"client_reference": "req-1-1"}},
        "prevOrderId": "3000000000000000007"}, event_type="ORDER_REPLACED")))
    assert event.provider_reference == "3000000000000000007"
    assert event.details["new_provider_reference"] == "3000000000000000009"
    assert (event.status, event.raw_status, event.our_reference) == (
        None, "ORDER_REPLACED", "req-1-1")


def test_order_created_is_noted_and_carries_our_reference_from_metadata():
    (event,) = mapping.parse_webhook(mapping.read_webhook(envelope({
        "order": {"orderId": "3000000000000000007", "status": "ASSIGNING_DRIVER",
                  "metadata": {"client_reference": "req-1-1"}}}, event_type="ORDER_CREATED")))
    assert (event.status, event.raw_status) == (None, "ORDER_CREATED")
    assert (event.provider_reference, event.our_reference) == ("3000000000000000007", "req-1-1")


def test_a_proof_of_delivery_event_for_a_completed_order_carries_the_proof():
    order = {"orderId": "3000000000000000007", "status": "COMPLETED",
             "stops": [{"stopId": "1"}, {"stopId": "2", "POD": {
                 "status": "DELIVERED", "image": "http://x/2.jpg",
                 "deliveredAt": "2026-11-28T01:20:00.000Z"}}]}
    (event,) = mapping.parse_webhook(mapping.read_webhook(envelope(
        {"order": order}, event_type="POD_STATUS_CHANGED")))
    assert (event.status, event.details["proof"]["photo_url"]) == (
        Status.DELIVERED, "http://x/2.jpg")
    (pending,) = mapping.parse_webhook(mapping.read_webhook(envelope(
        {"order": {**order, "status": "PICKED_UP"}}, event_type="POD_STATUS_CHANGED")))
    assert (pending.status, pending.raw_status) == (None, "POD_STATUS_CHANGED")
    assert "proof" not in pending.details


def test_an_event_about_no_order_gives_no_report():
    assert mapping.parse_webhook(mapping.read_webhook(envelope(
        {"balance": "1000"}, event_type="WALLET_BALANCE_CHANGED"))) == []


@pytest.mark.parametrize("data, event_type", [
    ({"order": {"orderId": "1"}}, "ORDER_STATUS_CHANGED"),
    ({"order": {"status": "ON_GOING"}}, "ORDER_STATUS_CHANGED"),
    ({"order": {"orderId": "2"}}, "ORDER_REPLACED"),
    ({"order": {"orderId": "2"}}, ""),
])
def test_status_and_replacement_events_that_lack_their_subject_are_refused(data, event_type):
    with pytest.raises(ValueError):
        mapping.parse_webhook(mapping.read_webhook(envelope(data, event_type=event_type)))
