"""The GO-JEK rides mapping (the provisional dialect) is pure code: tested with data, no
network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.couriers.goride import mapping
from gateway.couriers.goride.simulator import CANCELLABLE, LIFECYCLE, SCHEDULED, TERMINAL
from gateway.orders import Contact, Place, RideOrder
from gateway.statuses import Status

VISITOR = Contact("Anna Schmidt", "+6281398765432")
WIB = timezone(timedelta(hours=7))
RIDE = RideOrder(
    reference="req-7",
    pickup=Place(address="Jl. Sritanjung, Kepatihan, Banyuwangi", lat=-8.2075, lng=114.3735,
                 contact=VISITOR),
    dropoff=Place(address="Sumberagung, Pesanggaran", lat=-8.6, lng=114.02, contact=VISITOR),
    passengers=2)

# Every status of the dialect, with what it must become.
DIALECT_STATUSES = {
    "scheduled": Status.BOOKED, "searching": Status.BOOKED,
    "driver_assigned": Status.DRIVER_ASSIGNED, "driver_arrived": Status.DRIVER_ASSIGNED,
    "on_trip": Status.PICKED_UP, "completed": Status.DELIVERED,
    "cancelled": Status.CANCELLED, "no_driver": Status.NO_DRIVER,
}


@pytest.mark.parametrize("raw, ours", sorted(DIALECT_STATUSES.items()))
def test_every_ride_status_of_the_dialect_is_mapped(raw, ours):
    assert raw in mapping.STATUS_MAP
    assert mapping.map_status(raw) == ours


def test_the_map_has_no_status_the_dialect_does_not_define():
    assert set(mapping.STATUS_MAP) == set(DIALECT_STATUSES)


def test_the_simulator_sends_only_statuses_the_adapter_maps():
    assert {SCHEDULED, *LIFECYCLE, *TERMINAL, *CANCELLABLE} == set(mapping.STATUS_MAP)


def test_an_unknown_status_is_noted_not_guessed():
    assert mapping.map_status("teleported") is None
    assert mapping.map_status(" On_Trip ") == Status.PICKED_UP


def test_a_ride_now_carries_the_visitor_name_and_phone_only_and_our_reference():
    assert mapping.booking_payload(RIDE, "req-7-1") == {
        "serviceType": "GoCar",
        "pickup": {"name": "Jl. Sritanjung",
                   "address": "Jl. Sritanjung, Kepatihan, Banyuwangi",
                   "latLong": "-8.207500,114.373500", "contactName": "Anna Schmidt",
                   "contactPhone": "6281398765432", "note": ""},
        "destination": {"name": "Sumberagung", "address": "Sumberagung, Pesanggaran",
                        "latLong": "-8.600000,114.020000", "contactName": "Anna Schmidt",
                        "contactPhone": "6281398765432", "note": ""},
        "passengers": 2,
        "scheduledAt": None,
        "partnerReference": "req-7-1",
    }


def test_a_ride_for_later_carries_its_time_in_utc():
    later = RideOrder(reference="req-8", pickup=RIDE.pickup, dropoff=RIDE.dropoff,
                      passengers=1, scheduled_at=datetime(2026, 3, 2, 8, 30, tzinfo=WIB))
    payload = mapping.booking_payload(later, "req-8-1", service_type="GoRide")
    assert payload["scheduledAt"] == "2026-03-02T01:30:00Z"
    assert (payload["serviceType"], payload["passengers"]) == ("GoRide", 1)


def test_a_zoneless_time_is_taken_as_utc_and_seconds_are_enough():
    assert mapping.iso_utc(datetime(2026, 3, 2, 1, 30, 15, 999)) == "2026-03-02T01:30:15Z"
    assert mapping.iso_utc(datetime(2026, 3, 2, 1, 30, tzinfo=UTC)) == "2026-03-02T01:30:00Z"


def test_the_payload_holds_nothing_the_order_does_not():
    text = json.dumps(mapping.booking_payload(RIDE, "req-7-1"))
    assert "+62" not in text
    for forbidden in ("nik", "passport", "TRIP-2026"):
        assert forbidden.lower() not in text.lower()


def test_paths_put_our_reference_and_the_booking_id_in_one_segment():
    assert mapping.booking_path("GR-170563") == "/goride/v1/bookings/GR-170563"
    assert mapping.reference_path("a/b c") == "/goride/v1/bookings/partnerReference/a%2Fb%20c"
    assert mapping.cancel_body("GR-1") == {"bookingId": "GR-1"}


@pytest.mark.parametrize("raw, ours", [("searching", Status.BOOKED),
                                       ("scheduled", Status.BOOKED),
                                       ("driver_arrived", Status.DRIVER_ASSIGNED),
                                       ("on_trip", Status.PICKED_UP)])
def test_a_live_booking_found_is_adopted_at_its_status(raw, ours):
    booking = mapping.parse_booking("goride", {"bookingId": "GR-1", "status": raw,
                                               "partnerReference": "req-7-1"})
    assert (booking.provider_reference, booking.raw_status, booking.status) == (
        "GR-1", raw, ours)


@pytest.mark.parametrize("raw", ["cancelled", "no_driver", "completed"])
def test_an_ended_booking_found_is_adopted_as_booked_and_its_end_comes_as_a_report(raw):
    booking = mapping.parse_booking("goride", {"bookingId": "GR-1", "status": raw})
    assert (booking.raw_status, booking.status) == (raw, Status.BOOKED)


@pytest.mark.parametrize("body", [{}, {"status": "searching"}, [], None])
def test_an_answer_without_a_booking_id_is_not_a_booking(body):
    with pytest.raises(ValueError):
        mapping.parse_booking("goride", body)


def test_a_webhook_becomes_a_report_keyed_by_its_event_id():
    body = json.dumps({
        "event_id": "0b6f7f6c-5d1e-4c1a-9d55-3f1b2f0c9a11", "event_date": 1648542933000,
        "booking_id": "GR-170563", "partner_reference": "req-7-1", "status": "driver_arrived",
        "driver_name": "Budi Santoso", "vehicle_plate": "P 1234 AB"}).encode()
    event = mapping.parse_webhook(body)
    assert event.event_key == "0b6f7f6c-5d1e-4c1a-9d55-3f1b2f0c9a11"
    assert (event.provider_reference, event.our_reference) == ("GR-170563", "req-7-1")
    assert (event.raw_status, event.status) == ("driver_arrived", Status.DRIVER_ASSIGNED)
    assert event.occurred_at.isoformat() == "2022-03-29T08:35:33+00:00"
    assert "Budi" not in json.dumps(dict(event.details))


def test_a_webhook_without_an_event_id_is_keyed_by_its_body():
    body = b'{"booking_id": "GR-1", "status": "on_trip"}'
    assert mapping.parse_webhook(body).event_key == mapping.parse_webhook(body).event_key
    assert mapping.parse_webhook(body).event_key != mapping.parse_webhook(
        b'{"booking_id": "GR-1", "status": "completed"}').event_key


@pytest.mark.parametrize("body", [b"[]", b'{"status": "on_trip"}', b'{"booking_id": "GR-1"}',
                                  b"not json"])
def test_webhooks_that_are_not_ride_events_are_refused(body):
    with pytest.raises(ValueError):
        mapping.parse_webhook(body)


def test_status_answers_are_keyed_per_booking_and_status():
    event = mapping.parse_status({"bookingId": "GR-9", "status": "on_trip",
                                  "partnerReference": "req-7-1"})
    assert (event.event_key, event.status, event.our_reference) == (
        "status:GR-9:on_trip", Status.PICKED_UP, "req-7-1")
