"""Tests of dukcapil_delivery: the office's rules on their own, then through a real gateway."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re

import pytest
from gateway.services import RequestRefused
from marshmallow import ValidationError

from dukcapil_delivery.service import DukcapilDeliveryService

SERVICE = DukcapilDeliveryService()
CONFIG = SERVICE.config_schema().load({})
URL = "/api/v1/services/dukcapil_delivery/requests"
NIK = SERVICE.example_request["citizen"]["nik"]


def body(**changes) -> dict:
    return {**copy.deepcopy(SERVICE.example_request), **changes}


def family_card(**recipient) -> dict:
    return body(document="kk", recipient={"name": "Budi Santoso", "phone": "0812-1111-2222",
                                          "relationship": "spouse", **recipient})


def test_the_plugin_is_installed():
    names = {ep.name for ep in importlib.metadata.entry_points(group="gateway")}
    assert "dukcapil_delivery" in names, "run `pip install -e .` first"


def test_the_example_request_is_valid():
    assert SERVICE.validate(body(), CONFIG)["citizen"]["nik"] == NIK


@pytest.mark.parametrize("nik", ["351001520390000", "35100152039000021", "3510015203900O02",
                                 "3510013203900002", "3510015213900002"])
def test_a_nik_must_have_16_digits_and_a_possible_birth_date(nik):
    with pytest.raises(ValidationError) as error:
        SERVICE.validate(body(citizen={**body()["citizen"], "nik": nik}), CONFIG)
    assert list(error.value.messages) == ["citizen"]


def test_only_residents_of_the_regency_are_served():
    with pytest.raises(RequestRefused) as refused:
        SERVICE.validate(body(citizen={**body()["citizen"], "nik": "3509015203900002"}), CONFIG)
    assert refused.value.code == "not_a_resident"


def test_a_ktp_el_goes_to_its_owner_only_and_a_kk_to_the_family_too():
    with pytest.raises(RequestRefused) as refused:
        SERVICE.validate({**family_card(), "document": "ktp_el"}, CONFIG)
    assert refused.value.code == "recipient_must_be_owner"
    assert SERVICE.validate(family_card(), CONFIG)["recipient"]["phone"] == "+6281211112222"


def test_the_order_names_the_recipient_and_never_holds_the_nik():
    data = SERVICE.stored_form(SERVICE.validate(family_card(), CONFIG))
    order = SERVICE.build_order(data, CONFIG, "GW-TEST-1")
    (dropoff,) = order.dropoffs
    assert dropoff.contact.name == "Budi Santoso"
    assert dropoff.note.startswith("Serahkan hanya kepada Budi Santoso")
    assert order.package.description == "Dokumen Dukcapil (segel) …0123"
    assert NIK not in repr(order)


def test_the_service_is_offered_with_its_schema(gateway_agency):
    (service,) = gateway_agency.get("/api/v1/services").get_json()["services"]
    assert service["name"] == "dukcapil_delivery"
    assert service["request_schema"]["properties"]["document"]["enum"] == ["ktp_el", "kk"]


def test_refusals_are_422_with_the_services_code(gateway_agency):
    response = gateway_agency.post(URL, json={**family_card(), "document": "ktp_el"})
    assert response.status_code == 422
    assert response.get_json()["code"] == "recipient_must_be_owner"
    assert gateway_agency.post(URL, json=body(document="passport")).get_json()["fields"] == {
        "document": ["Must be one of: ktp_el, kk."]}


def test_the_settings_choose_the_documents(gateway_make_app, gateway_make_agency):
    app = gateway_make_app(services={"dukcapil_delivery": {"documents": ["kk"]}})
    agency = gateway_make_agency(app=app)
    response = agency.post(URL, json=body())
    assert response.get_json()["fields"] == {"document": ["This document is not delivered here."]}


def test_a_card_is_delivered_and_the_courier_never_sees_the_nik_or_the_pin(
        gateway_agency, gateway_worker, gateway_gosend):
    created = gateway_agency.post(URL, json=body())
    assert created.status_code == 202, created.get_json()
    answer = created.get_json()
    assert answer["delivery_pin"].isdigit() and len(answer["delivery_pin"]) == 6
    assert gateway_worker.wait_for_status(answer["id"], "delivered") == "delivered"
    (booking,) = gateway_gosend.bookings.values()
    told = json.dumps([call["json"] for call in gateway_gosend.requests])
    assert "Siti Aminah" in told and booking["payload"]["destinationContactName"] == "Siti Aminah"
    assert NIK not in told
    assert not re.search(rf"\b{answer['delivery_pin']}\b", told)


def test_the_console_lists_the_service(gateway_console):
    page = gateway_console.get("/console/services").get_data(as_text=True)
    assert 'id="service-dukcapil_delivery"' in page
