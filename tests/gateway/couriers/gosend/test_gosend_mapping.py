"""The GO-SEND mapping is pure code: tested with data, no network."""

from __future__ import annotations

import json

import pytest

from gateway.couriers.gosend import mapping
from gateway.couriers.gosend.simulator import LIFECYCLE, TERMINAL
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.statuses import Status

ORDER = DeliveryOrder(
    reference="req-1",
    pickup=Place(address="Jl. Letjen S. Parman No. 60", lat=-8.2166, lng=114.3632,
                 contact=Contact("Puskesmas Sobo", "+623330000001")),
    dropoffs=(Place(address="Jl. Letjen S. Parman No. 5", lat=-8.2192, lng=114.3691,
                    contact=Contact("Siti Aminah", "+6281234567890"), note="Pagar hijau"),),
    package=Package(description="Paket obat tersegel #req-1"),
    cold_chain=True)

# Every status the reference lists (section 2.5), with what it must become.
REFERENCE_STATUSES = {
    "confirmed": Status.BOOKED, "allocated": Status.DRIVER_ASSIGNED,
    "out_for_pickup": Status.DRIVER_ASSIGNED, "picked": Status.PICKED_UP,
    "out_for_delivery": Status.PICKED_UP, "on_hold": None, "delivered": Status.DELIVERED,
    "cancelled": Status.CANCELLED, "rejected": Status.RETURNED, "no_driver": Status.NO_DRIVER,
}


@pytest.mark.parametrize("raw, ours", sorted(REFERENCE_STATUSES.items()))
def test_every_gosend_status_in_the_reference_is_mapped(raw, ours):
    assert raw in mapping.STATUS_MAP
    assert mapping.map_status(raw) == ours


def test_the_simulator_sends_only_statuses_the_adapter_maps():
    assert set(LIFECYCLE) | TERMINAL <= set(mapping.STATUS_MAP)


def test_an_unknown_status_is_noted_not_guessed():
    assert mapping.map_status("teleported") is None


def test_the_booking_payload_follows_the_gokilat_format():
    payload = mapping.booking_payload(ORDER, "req-1-1")
    assert payload["paymentType"] == 3 and payload["shipment_method"] == "Instant"
    (route,) = payload["routes"]
    assert route["originLatLong"] == "-8.216600,114.363200"
    assert route["destinationLatLong"] == "-8.219200,114.369100"
    assert route["destinationContactPhone"] == "6281234567890"
    assert route["originContactPhone"] == "623330000001"
    assert route["storeOrderId"] == "req-1-1"
    assert route["destinationNote"] == "Pagar hijau"
    assert route["item"] == "Paket obat tersegel #req-1 (SEGEL: jangan dibuka, simpan dingin)"


def test_the_payload_holds_nothing_the_order_does_not():
    text = json.dumps(mapping.booking_payload(ORDER, "req-1-1"))
    for forbidden in ("nik", "diagnos", "prescription", "Amlodipine"):
        assert forbidden not in text.lower()


def test_a_webhook_becomes_a_report_keyed_by_its_event_id():
    body = json.dumps({
        "@type": "booking_event", "entity_id": "GK-11-117385", "type": "DRIVER_NOT_FOUND",
        "event_date": 1648542933000, "event_id": "7444acc4-0f14-419d-806c-6e245607c274",
        "partner_id": "601", "booking_id": "GK-11-117385", "status": "no_driver",
        "booking_status": "no_driver", "driver_name": "", "price": 20000.0}).encode()
    event = mapping.parse_webhook(body)
    assert event.event_key == "7444acc4-0f14-419d-806c-6e245607c274"
    assert event.provider_reference == "GK-11-117385"
    assert (event.raw_status, event.status) == ("no_driver", Status.NO_DRIVER)
    assert event.occurred_at.isoformat() == "2022-03-29T08:35:33+00:00"


def test_a_webhook_without_an_event_id_is_keyed_by_its_body():
    body = b'{"entity_id": "GK-11-1", "status": "picked"}'
    assert mapping.parse_webhook(body).event_key == mapping.parse_webhook(body).event_key
    assert mapping.parse_webhook(body).event_key != mapping.parse_webhook(
        b'{"entity_id": "GK-11-1", "status": "delivered"}').event_key


@pytest.mark.parametrize("body", [b"[]", b'{"status": "picked"}', b'{"entity_id": "x"}'])
def test_webhooks_that_are_not_booking_events_are_refused(body):
    with pytest.raises(ValueError):
        mapping.parse_webhook(body)


def test_status_answers_are_keyed_per_order_and_status():
    event = mapping.parse_status({"orderNo": "GK-11-9", "status": "picked",
                                  "storeOrderId": "req-1-1"})
    assert (event.event_key, event.status, event.our_reference) == (
        "status:GK-11-9:picked", Status.PICKED_UP, "req-1-1")


def test_a_quote_reads_the_chosen_shipment_method():
    quote = mapping.parse_quote("gosend", {"Instant": {
        "serviceable": True, "active": True, "distance": 2.4,
        "price": {"total_price": 15000}}}, "Instant")
    assert (quote.price, quote.distance_km, quote.serviceable) == (15000, 2.4, True)
