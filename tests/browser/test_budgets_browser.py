"""Budgets in a real headless Chromium, in Bahasa Indonesia: an admin sets an agency's budget
from its page, sees the warning at 80 %, and releases a request held for the budget."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from gateway import costs
from gateway.models import ApiKey, ServiceRequest, utcnow
from tests.browser.conftest import add_user, screenshot, sign_in
from tests.conftest import MEDICINE_BODY, bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"


def test_an_admin_sets_a_budget_sees_the_warning_and_releases_a_held_request(
        gosend_app, new_page):
    app = gosend_app(services={"medicine_delivery": {"couriers": ["gosend_sandbox"],
                                                     "on_budget_exhausted": "hold"}})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="live", name="Puskesmas Sobo")
    with gateway.db.read() as session:
        agency = session.scalars(select(ApiKey.agency_id).where(
            ApiKey.prefix == "_".join(key.split("_")[:3]))).one()
    month = costs.periods(gateway.region, utcnow())[0]
    client = app.test_client()
    first = client.post(CREATE, json=MEDICINE_BODY, headers=bearer(key)).get_json()["id"]

    page = new_page()
    sign_in(page, app.server_url, add_user(app, "bu-ani", "admin", language="id"))
    page.goto(f"{app.server_url}/console/agencies/{agency}")
    page.locator("#agency-budgets-link").click()
    expect(page.locator("h1")).to_contain_text("Anggaran")
    page.select_option("#budget-service", "medicine_delivery")
    page.fill("#budget-period", month)
    page.fill("#budget-limit", "10000")
    page.get_by_role("button", name="Simpan anggaran").click()
    expect(page.locator("#budget-list")).to_contain_text(month)

    assert costs.reserve(gateway, first, 8000)             # 80 % reserved
    page.reload()
    expect(page.locator(".flash.warning")).to_contain_text("Peringatan: 80%")
    screenshot(page, "budgets-warning-desktop")

    costs.set_budget(gateway, agency, "medicine_delivery", month, 8000, actor="test")
    held = client.post(CREATE, json={**MEDICINE_BODY, "prescription_id": "RX-HELD"},
                       headers=bearer(key)).get_json()
    assert held["status"] == "held_for_budget"
    page.reload()
    expect(page.locator("#held-list")).to_contain_text("RX-HELD")
    page.locator("#held-list").get_by_role("button", name="Lepaskan").click()
    expect(page.locator(".flash.success")).to_contain_text("Dilepaskan")
    with gateway.db.read() as session:
        assert session.get(ServiceRequest, held["id"]).status == "dispatching"
