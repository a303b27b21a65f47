"""Who is coming: each courier's mapping reads the driver's name and plate where its provider
reports them (pure; dictionaries in, neutral reports out), and the core keeps the first name
only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from gateway.couriers import ProviderEvent
from gateway.couriers.goride import mapping as goride
from gateway.couriers.gosend import mapping as gosend
from gateway.couriers.grabexpress import mapping as grab
from gateway.tracking import courier_of


def test_gosend_status_answer_and_webhook():
    event = gosend.parse_status({"orderNo": "GK-1", "status": "allocated",
                                 "driverName": "Budi Santoso", "vehicleNumber": "P 1234 AB"})
    assert (event.courier_name, event.vehicle_plate) == ("Budi Santoso", "P 1234 AB")
    hook = gosend.parse_webhook(json.dumps({"entity_id": "GK-1", "status": "allocated",
                                            "driver_name": "Budi Santoso",
                                            "driver_phone": "62812"}).encode())
    assert (hook.courier_name, hook.vehicle_plate) == ("Budi Santoso", None)
    empty = gosend.parse_webhook(json.dumps({"entity_id": "GK-1", "status": "confirmed",
                                             "driver_name": ""}).encode())
    assert empty.courier_name is None


def test_grabexpress_details_and_webhook():
    event = grab.parse_status({"deliveryID": "IN-1", "status": "PICKING_UP", "courier": {
        "name": "Agus Salim", "vehicle": {"licensePlate": "P 4321 CD"}}})
    assert (event.courier_name, event.vehicle_plate) == ("Agus Salim", "P 4321 CD")
    hook = grab.parse_webhook(json.dumps({"deliveryID": "IN-1", "status": "PICKING_UP",
                                          "timestamp": 1, "driver": {
                                              "name": "Agus Salim",
                                              "licensePlate": "P 4321 CD"}}).encode())
    assert (hook.courier_name, hook.vehicle_plate) == ("Agus Salim", "P 4321 CD")
    assert grab.parse_status({"deliveryID": "IN-1", "status": "ALLOCATING",
                              "courier": None}).courier_name is None


def test_goride_status_answer_and_webhook():
    event = goride.parse_status({"bookingId": "R1", "status": "driver_assigned",
                                 "driverName": "Wayan Sudarma", "vehiclePlate": "DK 5678 EF"})
    assert (event.courier_name, event.vehicle_plate) == ("Wayan Sudarma", "DK 5678 EF")
    hook = goride.parse_webhook(json.dumps({"booking_id": "R1", "status": "driver_assigned",
                                            "driver_name": "Wayan Sudarma",
                                            "vehicle_plate": "DK 5678 EF"}).encode())
    assert (hook.courier_name, hook.vehicle_plate) == ("Wayan Sudarma", "DK 5678 EF")


def test_the_core_keeps_the_first_name_a_clean_plate_and_a_utc_eta():
    event = ProviderEvent("k", "p", None, "x", None, courier_name="  Budi   Santoso Putra ",
                          vehicle_plate="p-1234<script>ab",
                          eta=datetime(2026, 12, 3, 10, 0, tzinfo=UTC))
    assert courier_of(event) == {"courier": {"first_name": "Budi", "plate": "P1234SCRIPTAB",
                                             "eta": "2026-12-03T10:00:00+00:00"}}
    assert courier_of(ProviderEvent("k", "p", None, "x", None)) == {}
    hostile = ProviderEvent("k", "p", None, "x", None, courier_name="<b>x</b>" * 50)
    assert len(courier_of(hostile)["courier"]["first_name"]) <= 30
