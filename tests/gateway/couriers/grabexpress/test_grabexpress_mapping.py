"""The GrabExpress mapping is pure code: tested with data, no network."""

from __future__ import annotations

import json

import pytest

from gateway.couriers.grabexpress import mapping
from gateway.couriers.grabexpress.simulator import LIFECYCLE, TERMINAL, WEBHOOK_STATUSES
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.statuses import Status

ORDER = DeliveryOrder(
    reference="req-1",
    pickup=Place(address="Jl. Kemiren No. 12, Glagah", lat=-8.2163, lng=114.3167,
                 contact=Contact("Pak Slamet", "+6281234567891"), note="Warung kopi"),
    dropoffs=(Place(address="Jl. Ahmad Yani No. 80, Banyuwangi", lat=-8.219, lng=114.369,
                    contact=Contact("Dewi Lestari", "+6285234567890"), note="Pagar hijau"),),
    package=Package(description="Paket #req-1", weight_grams=1200, length_cm=30, width_cm=20,
                    height_cm=10, declared_value=150000),
    cash_on_delivery=175000,
    requirements=frozenset({"cash_on_delivery"}))

BARE_ORDER = DeliveryOrder(
    reference="req-2", pickup=ORDER.pickup, dropoffs=ORDER.dropoffs,
    package=Package(description="Paket obat tersegel #req-2"))

# Every status the reference lists (section 3.3), with what it must become.
REFERENCE_STATUSES = {
    "QUEUEING": Status.BOOKED, "ALLOCATING": Status.BOOKED,
    "PENDING_PICKUP": Status.DRIVER_ASSIGNED, "PICKING_UP": Status.DRIVER_ASSIGNED,
    "PENDING_DROP_OFF": Status.PICKED_UP, "IN_DELIVERY": Status.PICKED_UP,
    "COMPLETED": Status.DELIVERED, "IN_RETURN": None, "RETURNED": Status.RETURNED,
    "CANCELED": Status.CANCELLED, "CANCELLED": Status.CANCELLED, "FAILED": Status.FAILED,
}


@pytest.mark.parametrize("raw, ours", sorted(REFERENCE_STATUSES.items()))
def test_every_grabexpress_status_in_the_reference_is_mapped(raw, ours):
    assert raw in mapping.STATUS_MAP
    assert mapping.map_status(raw) == ours


def test_the_status_map_holds_nothing_the_reference_does_not():
    assert set(mapping.STATUS_MAP) == set(REFERENCE_STATUSES)


def test_the_simulator_sends_only_statuses_the_adapter_maps():
    assert set(LIFECYCLE) | TERMINAL | WEBHOOK_STATUSES <= set(mapping.STATUS_MAP)


@pytest.mark.parametrize("reason, ours", [
    ("6|Could not find driver", Status.NO_DRIVER),
    ("6 | Could not find driver", Status.NO_DRIVER),
    ("5|Canceled by Grab Operator", Status.FAILED),
    ("2|Driver canceled : fake sender/order", Status.FAILED),
    ("16|Something new", Status.FAILED),
    (None, Status.FAILED),
])
def test_failed_is_no_driver_only_with_reason_6(reason, ours):
    assert mapping.map_status("FAILED", reason) == ours


def test_a_failed_reason_changes_no_other_status():
    assert mapping.map_status("COMPLETED", "6|Could not find driver") == Status.DELIVERED


def test_an_unknown_status_is_noted_not_guessed():
    assert mapping.map_status("TELEPORTED") is None
    assert mapping.map_status("") is None


def test_the_booking_payload_follows_the_delivery_api_format():
    payload = mapping.booking_payload(ORDER, "req-1-1")
    assert payload["merchantOrderID"] == "req-1-1"
    assert (payload["serviceType"], payload["vehicleType"]) == ("INSTANT", "BIKE")
    # Cash on delivery: Grab's CASH payment method and the amount the driver collects.
    assert (payload["paymentMethod"], payload["payer"]) == ("CASH", "SENDER")
    assert payload["origin"] == {"address": "Jl. Kemiren No. 12, Glagah",
                                 "coordinates": {"latitude": -8.2163, "longitude": 114.3167}}
    assert payload["destination"]["coordinates"] == {"latitude": -8.219, "longitude": 114.369}
    # Grab shows the driver only the sender's instruction: both notes go there.
    assert payload["sender"] == {
        "firstName": "Pak Slamet", "phone": "6281234567891", "smsEnabled": False,
        "instruction": "Warung kopi\nJl. Ahmad Yani No. 80, Banyuwangi: Pagar hijau"}
    assert payload["recipient"] == {"firstName": "Dewi Lestari", "phone": "6285234567890",
                                    "smsEnabled": True, "instruction": ""}
    assert payload["packages"] == [{
        "name": "Paket #req-1", "description": "Paket #req-1", "quantity": 1,
        "price": 150000,
        "dimensions": {"height": 10, "width": 20, "depth": 30, "weight": 1200}}]
    assert payload["cashOnDelivery"] == {"amount": 175000}


def test_phones_lose_their_plus_sign_and_nothing_else():
    assert mapping.person(ORDER.dropoffs[0], sms=True)["phone"] == "6285234567890"
    assert mapping.person(ORDER.pickup, sms=False)["phone"] == "6281234567891"
    text = json.dumps(mapping.booking_payload(ORDER, "req-1-1"))
    assert "+" not in text


def test_an_order_without_cod_or_sizes_sends_no_cod_and_zero_dimensions():
    payload = mapping.booking_payload(BARE_ORDER, "req-2-1", service_type="SAME_DAY",
                                      vehicle_type="CAR")
    assert "cashOnDelivery" not in payload and "codType" not in payload
    assert payload["paymentMethod"] == "CASHLESS"
    assert (payload["serviceType"], payload["vehicleType"]) == ("SAME_DAY", "CAR")
    (package,) = payload["packages"]
    assert package["dimensions"] == {"height": 0, "width": 0, "depth": 0, "weight": 0}
    assert package["price"] == 0
    assert payload["sender"]["instruction"] == \
        "Warung kopi\nJl. Ahmad Yani No. 80, Banyuwangi: Pagar hijau"


def test_a_drop_off_note_alone_reaches_the_driver_with_its_address():
    order = DeliveryOrder(
        reference="req-3",
        pickup=Place(address="Jl. Kemiren No. 12", lat=-8.2, lng=114.3,
                     contact=Contact("Pak Slamet", "+6281234567891")),
        dropoffs=ORDER.dropoffs, package=BARE_ORDER.package)
    payload = mapping.booking_payload(order, "req-3-1")
    assert payload["sender"]["instruction"] == "Jl. Ahmad Yani No. 80, Banyuwangi: Pagar hijau"
    assert payload["recipient"]["instruction"] == ""


def test_the_driver_instruction_is_cut_to_grabs_limit():
    long_note = Place(address="Jl. Ahmad Yani", lat=-8.2, lng=114.3,
                      contact=Contact("Dewi", "+6285234567890"), note="x" * 1200)
    order = DeliveryOrder(reference="req-4", pickup=ORDER.pickup, dropoffs=(long_note,),
                          package=BARE_ORDER.package)
    assert len(mapping.booking_payload(order, "r")["sender"]["instruction"]) == 1000


def test_the_cod_type_goes_only_with_cash_on_delivery():
    assert mapping.booking_payload(ORDER, "r", cod_type="REGULAR")["codType"] == "REGULAR"
    assert "codType" not in mapping.booking_payload(BARE_ORDER, "r", cod_type="REGULAR")


def test_the_payload_holds_nothing_the_order_does_not():
    text = json.dumps(mapping.booking_payload(BARE_ORDER, "req-2-1")).lower()
    for forbidden in ("nik", "diagnos", "prescription", "amlodipine", "3510011203650002"):
        assert forbidden not in text
    assert mapping.booking_payload(BARE_ORDER, "x")["packages"][0]["name"] == \
        "Paket obat tersegel #req-2"


def test_the_quote_payload_is_the_booking_payload_without_the_parties():
    quote = mapping.quote_payload(ORDER)
    booking = mapping.booking_payload(ORDER, "req-1-1")
    assert {k: booking[k] for k in quote} == quote
    assert not {"merchantOrderID", "sender", "recipient"} & set(quote)


def test_the_token_request_asks_for_the_delivery_scope():
    assert mapping.token_request("id", "secret") == {
        "client_id": "id", "client_secret": "secret", "grant_type": "client_credentials",
        "scope": "grab_express.partner_deliveries"}


def test_references_are_escaped_in_paths():
    assert mapping.delivery_path("IN-2-0BTPB1C1G8IL6W72ZHK8") == \
        "/v1/deliveries/IN-2-0BTPB1C1G8IL6W72ZHK8"
    assert mapping.merchant_order_path("a/b c") == "/v1/merchant/deliveries/a%2Fb%20c"


WEBHOOK = {
    "deliveryID": "IN-2-0BTPB1C1G8IL6W72ZHK8", "merchantOrderID": "req-1-1",
    "timestamp": 1648542933, "status": "COMPLETED", "trackURL": "https://grab.example/t",
    "pickupPin": "1234", "sender": {"name": "Pak Slamet", "address": "Jl. Kemiren"},
    "recipient": {"name": "Dewi Lestari", "address": "Jl. Ahmad Yani"},
    "driver": {"name": "Budi", "phone": "6281200000001", "licensePlate": "P 1234 AB"},
    "distance": 5800, "pickupProofURL": "https://grab.example/p.jpg",
    "dropoffProofURL": "https://grab.example/d.jpg", "cancelProofURL": "",
}


def test_a_completed_webhook_carries_the_proof_of_delivery():
    event = mapping.parse_webhook(json.dumps(WEBHOOK).encode())
    assert (event.provider_reference, event.our_reference) == (
        "IN-2-0BTPB1C1G8IL6W72ZHK8", "req-1-1")
    assert (event.raw_status, event.status) == ("COMPLETED", Status.DELIVERED)
    assert event.occurred_at.isoformat() == "2022-03-29T08:35:33+00:00"
    assert event.details == {"proof": {"receiver_name": "Dewi Lestari",
                                       "photo_url": "https://grab.example/d.jpg"}}


def test_only_a_completed_webhook_carries_proof():
    body = {**WEBHOOK, "status": "PENDING_DROP_OFF"}
    assert mapping.parse_webhook(json.dumps(body).encode()).details == {}


def test_webhooks_are_keyed_by_delivery_status_and_timestamp():
    def key(**changes):
        return mapping.parse_webhook(json.dumps({**WEBHOOK, **changes}).encode()).event_key

    assert key() == key(trackURL="https://grab.example/other", driver=None)
    assert len({key(), key(status="IN_DELIVERY"), key(timestamp=1648542934),
                key(deliveryID="IN-2-OTHER")}) == 4
    assert len(key()) <= 128


@pytest.mark.parametrize("spelling", ["CANCELED", "CANCELLED"])
def test_both_spellings_of_cancelled_end_cancelled(spelling):
    event = mapping.parse_webhook(json.dumps({**WEBHOOK, "status": spelling}).encode())
    assert event.status == Status.CANCELLED and event.details == {}
    assert mapping.parse_status({"deliveryID": "IN-2-X", "status": spelling}).status == \
        Status.CANCELLED


def test_a_failed_webhook_says_why_and_no_driver_is_a_failover():
    event = mapping.parse_webhook(json.dumps({
        **WEBHOOK, "status": "FAILED", "failedReason": "6|Could not find driver"}).encode())
    assert event.status == Status.NO_DRIVER
    assert event.details == {"failed_reason": "6|Could not find driver"}


@pytest.mark.parametrize("body", [b"[]", b'{"status": "COMPLETED"}', b'{"deliveryID": "x"}',
                                  b'{"deliveryID": "x", "status": 3}', b"not json"])
def test_webhooks_that_are_not_delivery_updates_are_refused(body):
    with pytest.raises(ValueError):
        mapping.parse_webhook(body)


def test_details_answers_are_keyed_per_delivery_and_status_and_read_the_failed_reason():
    event = mapping.parse_status({"deliveryID": "IN-2-9", "status": "FAILED",
                                  "merchantOrderID": "req-1-1",
                                  "advanceInfo": {"failedReason": "6|Could not find driver"}})
    assert (event.event_key, event.status, event.our_reference) == (
        "status:IN-2-9:FAILED", Status.NO_DRIVER, "req-1-1")


def test_a_create_answer_becomes_a_booking():
    booking = mapping.parse_booking("grab", {"deliveryID": "IN-2-9", "status": "ALLOCATING"})
    assert (booking.provider_reference, booking.raw_status, booking.status) == (
        "IN-2-9", "ALLOCATING", Status.BOOKED)


def test_a_quote_reads_the_chosen_service_type():
    body = {"quotes": [
        {"service": {"type": "SAME_DAY"}, "currency": {"code": "IDR"}, "amount": 9000.0,
         "distance": 5800},
        {"service": {"type": "INSTANT"}, "currency": {"code": "IDR"}, "amount": 23500.0,
         "distance": 5800}]}
    quote = mapping.parse_quote("grab", body, "INSTANT")
    assert (quote.price, quote.currency, quote.distance_km, quote.serviceable) == (
        23500, "IDR", 5.8, True)
    assert mapping.parse_quote("grab", {"quotes": []}, "INSTANT").serviceable is False


@pytest.mark.parametrize("body, text", [
    ({"target": "", "reason": "invalid_argument", "message": "Package over weight limit"},
     "Package over weight limit"),
    ({"reason": "conflict"}, "conflict"),
    ([], None), ({}, None),
])
def test_error_answers_keep_grabs_raw_text(body, text):
    assert mapping.error_text(body) == text
