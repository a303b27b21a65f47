"""The three shipped services: their validation rules and their pure order mapping."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError

from gateway import phones
from gateway.orders import DeliveryOrder, RideOrder
from tests.conftest import MEDICINE_BODY


@pytest.mark.parametrize("given, expected", [
    ("+6281234567890", "+6281234567890"), ("6281234567890", "+6281234567890"),
    ("081234567890", "+6281234567890"), ("0812-3456-7890", "+6281234567890"),
    ("(0333) 421-234", "+62333421234")])
def test_indonesian_phones_are_normalised(given, expected):
    assert phones.canonical(given) == expected


@pytest.mark.parametrize("bad", ["+4915112345678", "12345", "08", "+62 0812 3456", "0812abc4567",
                                 "0812-3456-7890-1234", ""])
def test_non_indonesian_phones_are_refused(bad):
    with pytest.raises(phones.InvalidPhoneNumber):
        phones.canonical(bad)


@pytest.mark.parametrize("given, expected", [
    ("081234567890", "+6281234567890"), ("+62 852-3456-7890", "+6285234567890"),
    ("0878 1234 5678", "+6287812345678")])
def test_mobile_numbers_pass_where_a_mobile_is_needed(given, expected):
    assert phones.canonical(given, mobile=True) == expected


@pytest.mark.parametrize("fixed_line", ["(0333) 421-234", "0333-000-0001", "+62 21 3456789"])
def test_fixed_lines_are_refused_where_a_mobile_is_needed(fixed_line):
    with pytest.raises(phones.InvalidPhoneNumber, match="mobile"):
        phones.canonical(fixed_line, mobile=True)


def service(gateway, name):
    return gateway.services[name], gateway.service_configs[name]


def test_medicine_order_carries_only_what_a_courier_needs(gateway):
    svc, config = service(gateway, "medicine_delivery")
    data = svc.stored_form(svc.validate(copy.deepcopy(MEDICINE_BODY), config))
    order = svc.build_order(data, config, reference="req-123456789")
    assert isinstance(order, DeliveryOrder)
    assert order.pickup.address.startswith("Jl. Letjen S. Parman No. 60")
    assert order.dropoffs[0].contact.name == "Siti Aminah"
    assert order.dropoffs[0].note == "Rumah pagar hijau"
    assert order.package.description == "Paket obat RX-…123"
    assert "Amlodipine" not in repr(order) and "3510011203650002" not in repr(order)


def test_an_order_cannot_be_widened_by_a_service(gateway):
    svc, config = service(gateway, "medicine_delivery")
    order = svc.build_order(svc.stored_form(svc.validate(copy.deepcopy(MEDICINE_BODY), config)),
                            config, reference="r")
    with pytest.raises((AttributeError, TypeError)):
        order.nik = "3510011203650002"
    with pytest.raises(TypeError):
        DeliveryOrder(reference="r", pickup=order.pickup, dropoffs=order.dropoffs,
                      package=order.package, diagnosis="hypertension")


def test_cold_chain_medicine_requires_a_cold_chain_courier(gateway):
    svc, config = service(gateway, "medicine_delivery")
    body = copy.deepcopy(MEDICINE_BODY)
    body["cold_chain"] = True
    order = svc.build_order(svc.stored_form(svc.validate(body, config)), config, reference="r")
    assert order.requirements == frozenset({"cold_chain"})


def test_umkm_parcel_with_cod_and_two_dropoffs_declares_both_needs(gateway):
    svc, config = service(gateway, "umkm_pickup")
    body = copy.deepcopy(svc.example_request)
    body["dropoffs"].append(dict(body["dropoffs"][0], name="Budi"))
    body["cash_on_delivery"] = 150000
    order = svc.build_order(svc.stored_form(svc.validate(body, config)), config, reference="r")
    assert order.requirements == frozenset({"cash_on_delivery", "multi_drop"})
    assert [d.contact.name for d in order.dropoffs] == ["Dewi Lestari", "Budi"]
    assert order.package.weight_grams == 1200


def test_umkm_dropoff_outside_the_area_is_named_by_index(gateway):
    svc, config = service(gateway, "umkm_pickup")
    body = copy.deepcopy(svc.example_request)
    body["dropoffs"][0]["location"] = {"lat": -6.2, "lng": 106.8}
    with pytest.raises(ValidationError) as caught:
        svc.validate(body, config)
    assert caught.value.messages == {"dropoffs": {0: {"location": ["Outside the service area."]}}}


def test_tourism_ride_goes_from_pickup_point_to_destination(gateway):
    svc, config = service(gateway, "tourism_transport")
    body = dict(svc.example_request,
                departure_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())
    order = svc.build_order(svc.stored_form(svc.validate(body, config)), config, reference="r")
    assert isinstance(order, RideOrder)
    assert order.pickup.address.startswith("Jl. Sritanjung")
    assert order.dropoff.address.startswith("Sumberagung")
    assert order.passengers == 2 and order.scheduled_at.tzinfo is not None


def test_tourism_refuses_unknown_places_and_far_future_departures(gateway):
    svc, config = service(gateway, "tourism_transport")
    body = dict(svc.example_request, destination_id="bali",
                departure_at=(datetime.now(UTC) + timedelta(days=45)).isoformat())
    with pytest.raises(ValidationError) as caught:
        svc.validate(body, config)
    assert set(caught.value.messages) == {"destination_id", "departure_at"}


def test_tourism_asks_for_no_nik(gateway):
    svc, _config = service(gateway, "tourism_transport")
    assert "nik" not in svc.request_schema().fields["visitor"].schema.fields
