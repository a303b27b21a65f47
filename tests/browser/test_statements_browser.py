"""The monthly statement in a real headless Chromium, in Bahasa Indonesia: an agency's staff
open it from the menu, see the month's deliveries made through the GO-SEND simulator and their
total, print it without the menu; another agency's staff get nothing."""

from __future__ import annotations

import copy

from playwright.sync_api import expect

from gateway import statements
from gateway.agencies import create_agency
from gateway.models import ServiceRequest, utcnow
from gateway.testing import wait_for_status
from tests.browser.conftest import screenshot, sign_in_as_staff, staff_of
from tests.conftest import MEDICINE_BODY, bearer

CREATE = "/api/v1/services/medicine_delivery/requests"



def test_agency_staff_see_the_months_statement_in_indonesian_and_print_it(
        gosend_app, new_page):
    app = gosend_app(services={"medicine_delivery": {"couriers": ["gosend_sandbox"]}})
    gateway = app.extensions["gateway"]
    sobo, live = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"], actor="test")
    other, _ = create_agency(gateway, "Puskesmas Lain", ["medicine_delivery"], actor="test")
    ids = []
    for number in (1, 2):
        body = copy.deepcopy(MEDICINE_BODY)
        body["prescription_id"] = f"RX-SPJ-{number}"
        made = app.test_client().post(CREATE, json=body, headers=bearer(live))
        ids.append(made.get_json()["id"])
    for request_id in ids:
        wait_for_status(app, request_id, "delivered")
    with gateway.db.read() as session:
        total = sum(session.get(ServiceRequest, i).final_amount for i in ids)
    assert total > 0
    month = statements.month_of(gateway.region, utcnow())

    page = new_page(locale="id-ID")
    sign_in_as_staff(page, app.server_url, staff_of(app, sobo.id, "bu-sri", key_type="live"))
    page.get_by_role("link", name="Laporan bulanan").click()
    expect(page.locator("h1")).to_contain_text("Laporan pengantaran")
    expect(page.locator("#statement-agency")).to_have_text("Puskesmas Sobo")
    expect(page.locator("#statement-period")).to_contain_text(month)
    expect(page.locator("#statement-lines")).to_contain_text("RX-SPJ-1")
    expect(page.locator("#statement-lines")).to_contain_text("RX-SPJ-2")
    expect(page.locator("#statement-total-final")).to_have_attribute("data-amount", str(total))
    expect(page.locator("#statement-totals")).to_contain_text("Harga akhir")
    expect(page.locator("#statement-signatures")).to_contain_text("Diperiksa oleh (PPK)")
    screenshot(page, "statement-desktop")
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("#statement-choice")).to_be_hidden()
    expect(page.locator("#statement-signatures")).to_be_visible()
    screenshot(page, "statement-print")

    stranger = new_page(locale="id-ID")
    sign_in_as_staff(stranger, app.server_url, staff_of(app, other.id, "pak-budi", key_type="live"))
    answer = stranger.goto(f"{app.server_url}/console/agencies/{sobo.id}/statements")
    assert answer.status == 404
    expect(stranger.locator("body")).not_to_contain_text("RX-SPJ-1")
