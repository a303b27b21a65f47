"""A request by form: drawn from the service's schema, made through the API's own intake
(same errors on the same fields), once however often the form is sent."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from gateway.agencies import create_agency, issue_key
from gateway.console.request_form import describe, read_body, values_of
from tests.conftest import MEDICINE_BODY, bearer
from tests.console.test_agency_staff import staff


def medicine_form(**overrides) -> dict:
    """``MEDICINE_BODY`` as a person would type it into the form."""
    patient = MEDICINE_BODY["patient"]
    form = {
        "prescription_id": "RX-FORM-1",
        "pickup_location_id": MEDICINE_BODY["pickup_location_id"],
        "patient.name": patient["name"], "patient.phone": "0812-3456-7890",
        "patient.nik": patient["nik"], "patient.address": patient["address"],
        "patient.location.lat": "-8.2192", "patient.location.lng": "114.3691",
        "items._rows": "2", "items.0.name": "Amlodipine 10 mg", "items.0.quantity": "30",
        "items.1.name": "", "items.1.quantity": "",
        "pharmacist_counselled": "on", "notes_for_courier": "Rumah pagar hijau",
    }
    form.update(overrides)
    return form


@pytest.fixture
def puskesmas(app):
    gateway = app.extensions["gateway"]
    agency, _live = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"],
                                  actor="test")
    return {"id": agency.id, "test": issue_key(gateway, agency.id, "test", actor="test")}


def _hidden_key(page: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)


def _api_requests(app, key) -> list[dict]:
    answer = app.test_client().get("/api/v1/requests", headers=bearer(key))
    return answer.get_json()["requests"]


def test_the_form_is_drawn_from_the_schema_in_the_readers_language(app, puskesmas):
    console = staff(app, puskesmas["id"], language="id")
    page = console.get("/console/services/medicine_delivery/new").get_data(as_text=True)
    for label in ("Nomor resep", "Nama pasien", "NIK", "Lintang", "Bujur", "Nama obat",
                  "Apoteker sudah memberi konseling", "Tambah baris", "Kirim permintaan"):
        assert label in page, label
    assert 'name="items.0.quantity"' in page and 'name="patient.location.lat"' in page
    assert 'value="puskesmas-sobo"' in page         # a select from the service's places
    assert "data-map" in page and "leaflet/leaflet.js" in page
    english = staff(app, puskesmas["id"]).get("/console/services/medicine_delivery/new")
    assert "Prescription number" in english.get_data(as_text=True)


def test_submitting_the_form_makes_one_request_the_agency_key_sees(app, puskesmas):
    console = staff(app, puskesmas["id"])
    key = _hidden_key(console.get("/console/services/medicine_delivery/new")
                      .get_data(as_text=True))
    sent = console.post("/console/services/medicine_delivery/new",
                        {**medicine_form(), "idempotency_key": key})
    assert sent.status_code == 302, sent.get_data(as_text=True)[:2000]
    request_id = sent.headers["Location"].rsplit("/", 1)[1]
    detail = console.get(sent.headers["Location"]).get_data(as_text=True)
    pin = re.search(r'id="delivery-pin"><strong>(\d{6})<', detail).group(1)
    seen = app.test_client().get(f"/api/v1/requests/{request_id}",
                                 headers=bearer(puskesmas["test"]))
    assert seen.status_code == 200
    assert seen.get_json()["reference"] == "RX-FORM-1"
    assert seen.get_json()["delivery_pin"] == pin
    # the tracking link to hand to the citizen is the one the API gives, and it opens the page
    tracking = re.search(r'id="tracking-url" href="([^"]+)"', detail).group(1)
    assert tracking == seen.get_json()["tracking_url"]
    assert app.test_client().get(urlsplit(tracking).path).status_code == 200
    # sent again with the same hidden key (a double click): the same request, no second one
    again = console.post("/console/services/medicine_delivery/new",
                         {**medicine_form(), "idempotency_key": key})
    assert again.status_code == 302 and again.headers["Location"].endswith(request_id)
    assert [r["id"] for r in _api_requests(app, puskesmas["test"])] == [request_id]


def test_a_bad_field_shows_the_intakes_error_next_to_it(app, puskesmas):
    console = staff(app, puskesmas["id"])
    key = _hidden_key(console.get("/console/services/medicine_delivery/new")
                      .get_data(as_text=True))
    bad = console.post("/console/services/medicine_delivery/new",
                       {**medicine_form(**{"patient.nik": "12345", "items.0.quantity": "lots"}),
                        "idempotency_key": key})
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert 'data-code="validation_failed"' in page
    # the same messages the API gives for the same body, at the same paths
    api = app.test_client().post(
        "/api/v1/services/medicine_delivery/requests",
        json={**MEDICINE_BODY, "patient": {**MEDICINE_BODY["patient"], "nik": "12345"},
              "items": [{"name": "Amlodipine 10 mg", "quantity": "lots"}]},
        headers=bearer(puskesmas["test"])).get_json()
    for path in ("patient.nik", "items.0.quantity"):
        message = api["fields"][path][0]
        assert re.search(rf'id="error-{re.escape(path)}"[^>]*>{re.escape(message)}<', page), \
            path
    assert 'value="Siti Aminah"' in page and _hidden_key(page) == key   # nothing lost
    assert _api_requests(app, puskesmas["test"]) == []
    # in Indonesian, marshmallow's own messages are the console's translations
    console.post("/console/language", {"language": "id",
                                       "next": "/console/services/medicine_delivery/new"})
    again = console.post("/console/services/medicine_delivery/new",
                         {**medicine_form(**{"items.0.quantity": "lots"}),
                          "idempotency_key": key}).get_data(as_text=True)
    assert re.search(r'id="error-items\.0\.quantity"[^>]*>Bukan bilangan bulat yang sah\.<',
                     again)


def test_add_a_row_works_without_javascript_and_empty_rows_are_ignored(app, puskesmas):
    console = staff(app, puskesmas["id"])
    page = console.get("/console/services/medicine_delivery/new").get_data(as_text=True)
    assert 'name="items.1.name"' not in page
    more = console.post("/console/services/medicine_delivery/new",
                        {**medicine_form(), "items._rows": "1", "_add_row": "items",
                         "idempotency_key": _hidden_key(page)})
    assert more.status_code == 200
    assert 'name="items.1.name"' in more.get_data(as_text=True)
    assert 'value="Amlodipine 10 mg"' in more.get_data(as_text=True)
    assert _api_requests(app, puskesmas["test"]) == []      # adding a row sends nothing


def test_the_form_needs_csrf_and_an_agency_account(app, puskesmas, console_as):
    console = staff(app, puskesmas["id"])
    page = console.get("/console/services/medicine_delivery/new").get_data(as_text=True)
    forged = console.post("/console/services/medicine_delivery/new",
                          {**medicine_form(), "idempotency_key": _hidden_key(page)},
                          csrf=False)
    assert forged.status_code == 400
    assert _api_requests(app, puskesmas["test"]) == []
    assert console_as("admin").get(
        "/console/services/medicine_delivery/new").status_code == 403
    # a service the agency may not use: refused like the API refuses it
    assert console.get("/console/services/umkm_pickup/new").status_code == 403
    assert console.get("/console/services/nosuch/new").status_code == 404


def test_a_forged_idempotency_key_is_refused_by_intake(app, puskesmas):
    console = staff(app, puskesmas["id"])
    console.get("/console/services/medicine_delivery/new")
    bad = console.post("/console/services/medicine_delivery/new",
                       {**medicine_form(), "idempotency_key": "x" * 300})
    assert bad.status_code == 422 and "Idempotency-Key" in bad.get_data(as_text=True)


def test_reading_the_form_back_converts_only_what_the_inputs_cannot_say(app):
    service = app.extensions["gateway"].services["medicine_delivery"]
    inputs = describe(service.request_schema(), "en", {}, medicine_form())
    body = read_body(inputs, medicine_form(), "Asia/Jakarta")
    assert body["items"] == [{"name": "Amlodipine 10 mg", "quantity": 30}]
    assert body["patient"]["location"] == {"lat": -8.2192, "lng": 114.3691}
    assert body["pharmacist_counselled"] is True and body["cold_chain"] is False
    assert values_of(body)["items._rows"] == "1"


def test_every_services_example_goes_through_its_form_unchanged(app):
    """Drawn from any service's schema, the form says back what the service accepts."""
    gateway = app.extensions["gateway"]
    for name, service in gateway.services.items():
        if not service.example_request:
            continue
        config = gateway.service_configs.get(name, {})
        typed = values_of(service.example_request)
        inputs = describe(service.request_schema(), "id", config, typed)
        body = read_body(inputs, typed, gateway.region.zone_name)
        assert service.validate(body, config) == service.validate(
            service.example_request, config), name


def test_each_service_has_its_form_page(app, puskesmas):
    gateway = app.extensions["gateway"]
    everything, _live = create_agency(gateway, "Dinas", sorted(gateway.enabled_services()),
                                      actor="test")
    console = staff(app, everything.id)
    links = console.get("/console/requests").get_data(as_text=True)
    for name in gateway.enabled_services():
        assert f"/console/services/{name}/new" in links, name
        assert console.get(f"/console/services/{name}/new").status_code == 200, name
