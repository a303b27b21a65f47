"""Agency staff in a real headless Chromium, in Bahasa Indonesia: a request made by form
(a row added, the point picked on the map), ending on its page with the PIN; another
agency's staff cannot see it."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from gateway.agencies import create_agency, issue_key
from tests.browser.conftest import screenshot, sign_in_as_staff, staff_of
from tests.conftest import MEDICINE_BODY, bearer


def test_staff_submit_a_request_by_form_in_indonesian_and_others_cannot_see_it(
        gosend_app, new_page, background_worker):
    app = gosend_app()
    url = app.server_url
    gateway = app.extensions["gateway"]
    sobo, _live = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"], actor="test")
    test_key = issue_key(gateway, sobo.id, "test", actor="test")
    other, _key = create_agency(gateway, "Puskesmas Lain", ["medicine_delivery"], actor="test")
    background_worker(app)

    page = new_page(locale="id-ID")
    sign_in_as_staff(page, url, staff_of(app, sobo.id, "petugas-sobo"))
    page.get_by_role("link", name=re.compile("Pengantaran obat|Medicine", re.I)).first.click()
    page.wait_for_url(f"{url}/console/services/medicine_delivery/new")
    expect(page.locator("h1")).to_contain_text("Permintaan baru")
    patient = MEDICINE_BODY["patient"]
    page.get_by_label("Nomor resep").fill("RX-BROWSER-1")
    page.select_option('[name="pickup_location_id"]', MEDICINE_BODY["pickup_location_id"])
    page.get_by_label("Nama pasien").fill(patient["name"])
    page.get_by_label("Nomor HP pasien").fill("0812-3456-7890")
    page.get_by_label("NIK").fill(patient["nik"])
    page.get_by_label("Alamat").fill(patient["address"])
    # the map (no tile server configured: a blank map) sets the point where it is clicked
    point = page.locator("[data-map]")
    expect(point).to_be_visible()
    point.click(position={"x": 120, "y": 80})
    expect(page.locator('[name="patient.location.lat"]')).not_to_have_value("")
    # ... and typing the coordinates works as well
    page.fill('[name="patient.location.lat"]', str(patient["location"]["lat"]))
    page.fill('[name="patient.location.lng"]', str(patient["location"]["lng"]))
    page.fill('[name="items.0.name"]', "Amlodipine 10 mg")
    page.fill('[name="items.0.quantity"]', "30")
    page.get_by_role("button", name="Tambah baris").click()     # a submit: no JS needed
    page.fill('[name="items.1.name"]', "Metformin 500 mg")
    page.fill('[name="items.1.quantity"]', "60")
    expect(page.locator('[name="items.0.name"]')).to_have_value("Amlodipine 10 mg")
    page.get_by_label("Apoteker sudah memberi konseling").check()
    screenshot(page, "console-request-form-id")
    page.get_by_role("button", name="Kirim permintaan").click()
    page.wait_for_url(re.compile(rf"{re.escape(url)}/console/requests/[0-9a-f-]+$"))
    expect(page.locator("#request-handover")).to_contain_text("Untuk warga")
    pin = page.locator("#delivery-pin").inner_text().strip()
    assert re.fullmatch(r"\d{6}", pin)
    request_id = page.url.rsplit("/", 1)[1]
    screenshot(page, "console-request-made-by-form-id")
    seen = requests.get(f"{url}/api/v1/requests/{request_id}", headers=bearer(test_key),
                        timeout=10).json()
    assert seen["reference"] == "RX-BROWSER-1" and seen["delivery_pin"] == pin

    stranger = new_page(locale="id-ID")
    sign_in_as_staff(stranger, url, staff_of(app, other.id, "petugas-lain"))
    expect(stranger.locator("#request-list")).not_to_contain_text("RX-BROWSER-1")
    answer = stranger.goto(f"{url}/console/requests/{request_id}")
    assert answer.status == 404
