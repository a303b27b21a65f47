"""The console in a real headless Chromium: what each role sees, agencies and keys, a request
moving to delivered, the dispatch board on a phone, language, and forged form posts."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from tests.browser.conftest import add_user, screenshot, sign_in
from tests.conftest import MEDICINE_BODY, bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"
#: form controls a screen reader could not name (no <label>, aria-label or aria-labelledby)
UNLABELLED_CONTROLS = """
[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
               && !e.getAttribute("aria-labelledby"))
  .map(e => e.name || e.id || e.outerHTML.slice(0, 60))
"""
MENU = dict.fromkeys(("admin", "operator", "auditor"), [
    "Dashboard", "Requests", "Fleet dispatch", "Agencies", "Services and providers", "Audit",
    "Queues", "Satisfaction survey (SKM)", "Reports", "Messages"])


def test_each_role_sees_only_the_controls_it_may_use(gosend_app, new_page):
    app = gosend_app()
    url = app.server_url
    key = new_key(app, key_type="test")
    request_id = requests.post(url + CREATE, json=MEDICINE_BODY, headers=bearer(key),
                               timeout=10).json()["id"]
    seen = {}
    for role in ("admin", "operator", "auditor"):
        page = new_page()
        sign_in(page, url, add_user(app, f"{role}-user", role))
        expect(page.locator("header nav a")).to_have_text(MENU[role])
        page.goto(f"{url}/console/agencies")
        seen[(role, "create agency")] = page.locator("#create-agency").count() > 0
        page.goto(f"{url}/console/requests/{request_id}")
        seen[(role, "cancel")] = page.get_by_role("button", name="Cancel request").count() > 0
        seen[(role, "personal")] = page.locator("#show-personal").count() > 0
    assert seen == {
        ("admin", "create agency"): True, ("admin", "cancel"): True,
        ("admin", "personal"): True,
        ("operator", "create agency"): False, ("operator", "cancel"): True,
        ("operator", "personal"): True,
        ("auditor", "create agency"): False, ("auditor", "cancel"): False,
        ("auditor", "personal"): False,
    }


def test_an_admin_creates_an_agency_and_its_key_works(gosend_app, new_page):
    app = gosend_app()
    url = app.server_url
    page = new_page()
    sign_in(page, url, add_user(app, "ana", "admin"))
    page.get_by_role("link", name="Agencies").click()
    page.fill("#agency-name", "Puskesmas Genteng")
    page.get_by_label("medicine_delivery").check()
    page.get_by_label("test key").check()
    page.get_by_role("button", name="Create agency").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("gw_test_")
    screenshot(page, "agencies-new-key-desktop")
    answer = requests.post(url + CREATE, json=MEDICINE_BODY, headers=bearer(key), timeout=10)
    assert answer.status_code == 202
    page.reload()   # a reload re-posts nothing useful: the name is taken, no second key shows
    page.goto(f"{url}/console/agencies")
    expect(page.locator("#agency-list")).to_contain_text("Puskesmas Genteng")
    expect(page.locator("#new-key")).to_have_count(0)


def test_a_request_submitted_through_the_api_moves_to_delivered_on_its_page(
        gosend_app, gateway_gosend, new_page, background_worker):
    app = gosend_app()
    url = app.server_url
    background_worker(app)
    key = new_key(app, key_type="test")
    page = new_page()
    sign_in(page, url, add_user(app, "oki", "operator"))
    request_id = requests.post(url + CREATE, json=MEDICINE_BODY, headers=bearer(key),
                               timeout=10).json()["id"]
    page.goto(f"{url}/console/requests")
    page.locator(f"#request-{request_id} a").click()
    expect(page.locator("#request-status")).to_have_text("delivered", timeout=45_000)
    timeline = page.locator("#timeline")
    for step in ("received", "booked", "driver_assigned", "picked_up", "delivered"):
        expect(timeline).to_contain_text(step)
    expect(timeline).to_contain_text("gosend_sandbox #1")
    assert len(gateway_gosend.bookings) == 1, "the simulator should hold exactly one booking"
    screenshot(page, "request-detail-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "request-detail-phone")
    page.goto(f"{url}/console/requests")
    screenshot(page, "requests-phone")


def test_a_form_posted_from_another_site_without_the_token_is_refused(gosend_app, new_page):
    """SameSite=Lax does not help here: another port of 127.0.0.1 is the same site. The CSRF
    token is what refuses the forged post."""
    from flask import Flask

    from gateway.testing import ServerThread

    app = gosend_app()
    url = app.server_url
    evil = Flask("evil")

    @evil.get("/")
    def forged_form():
        return (f'<form id="f" method="post" action="{url}/console/agencies">'
                '<input name="name" value="Forged agency">'
                '<input name="services" value="medicine_delivery"></form>'
                '<button id="go" form="f">go</button>')

    page = new_page()
    sign_in(page, url, add_user(app, "korban", "admin"))
    with ServerThread(evil) as evil_server:
        page.goto(evil_server.url)
        page.click("#go")
        expect(page.locator("#error-reason")).to_contain_text("did not come from this console")
    page.goto(f"{url}/console/agencies")
    expect(page.locator("#agency-list")).not_to_contain_text("Forged agency")


def test_the_dispatch_board_works_on_a_phone(make_app, new_page, background_worker):
    from gateway.testing import ServerThread, wait_for_status

    app = make_app(couriers={"gosend_sandbox": {"enabled": False}, "own_fleet": {}},
                   services={"medicine_delivery": {"couriers": ["own_fleet"]}})
    with ServerThread(app) as server:
        url = server.url
        key = new_key(app, key_type="test")
        created = requests.post(url + CREATE, json=MEDICINE_BODY, headers=bearer(key),
                                timeout=10).json()
        wait_for_status(app, created["id"], "booked")
        background_worker(app)
        page = new_page(phone=True)
        sign_in(page, url, add_user(app, "ratna", "operator"))
        page.goto(f"{url}/console/fleet")
        card = page.locator("article.fleet-job").first
        expect(card).to_contain_text("Siti Aminah")
        screenshot(page, "fleet-board-phone")
        card.get_by_label("Staff courier").fill("Bu Ratna")
        card.get_by_role("button", name="Assign").click()
        page.locator("#fleet-accepted article.fleet-job").get_by_role(
            "button", name="Mark picked up").click()
        job = page.locator("#fleet-picked_up article.fleet-job")
        job.get_by_label("Delivery PIN from the recipient").fill(created["delivery_pin"])
        job.get_by_role("button", name="Complete delivery").click()
        expect(page.locator(".flash.success")).to_contain_text("Delivered")
        wait_for_status(app, created["id"], "delivered")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the board scrolls sideways on a phone ({width}px)"
        page.set_viewport_size({"width": 1280, "height": 860})
        screenshot(page, "fleet-board-desktop")


def test_the_language_is_chosen_by_the_user_and_remembered(gosend_app, new_page):
    app = gosend_app()
    url = app.server_url
    page = new_page()
    sign_in(page, url, add_user(app, "putu", "auditor"))
    page.select_option("#language-choice", "id")
    expect(page.locator("header nav")).to_contain_text("Permintaan")
    expect(page.locator("footer")).to_contain_text("WIB")
    page.get_by_role("button", name="Keluar").click()
    again = new_page()
    sign_in(again, url, "putu")
    expect(again.locator("html")).to_have_attribute("lang", "id")
    expect(again.locator("header nav")).to_contain_text("Dasbor")
    assert re.search(r"\d{2}-\d{2}-\d{4} \d{2}:\d{2} WIB|WIB", again.content())


def test_an_admin_changes_a_setting_sees_the_diff_and_rolls_it_back(gosend_app, new_page):
    app = gosend_app()
    url = app.server_url
    gateway = app.extensions["gateway"]
    page = new_page()
    sign_in(page, url, add_user(app, "sari", "admin"))
    page.get_by_role("link", name="Services and providers").click()
    screenshot(page, "services-desktop")
    page.goto(f"{url}/console/services/service/medicine_delivery")
    field = page.locator("#settings-form [name='retention_days']")
    before = int(field.input_value())
    assert before == gateway.service_settings("medicine_delivery")["retention_days"]
    field.fill(str(before + 15))
    page.locator("#settings-form").get_by_role("button", name="Save").click()
    expect(page.locator("#history")).to_contain_text(f"+retention_days: {before + 15}")
    expect(page.locator("#history")).to_contain_text(f"-retention_days: {before}")
    screenshot(page, "service-history-desktop")
    gateway.refresh_config(force=True)
    assert gateway.service_settings("medicine_delivery")["retention_days"] == before + 15

    # A value the start-up rules refuse is refused here too, next to its field.
    page.goto(f"{url}/console/services/service/medicine_delivery")
    page.locator("#settings-form [name='retention_days']").fill("0")
    page.locator("#settings-form").get_by_role("button", name="Save").click()
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#error-retention_days")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#input-retention_days")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "service-settings-error-desktop")

    page.goto(f"{url}/console/services/service/medicine_delivery/history")
    versions = page.locator("#history tbody tr").count()
    page.locator("form.rollback[data-version='0'] button").click()
    expect(page.locator("#history tbody tr")).to_have_count(versions + 1)
    gateway.refresh_config(force=True)
    assert gateway.service_settings("medicine_delivery")["retention_days"] == before


def test_the_audit_chain_is_verified_from_the_page(gosend_app, new_page):
    app = gosend_app()
    url = app.server_url
    page = new_page()
    sign_in(page, url, add_user(app, "tri", "auditor"))
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("#audit-records")).to_contain_text("admin.sign_in")
    page.locator("#verify-chain button").click()
    expect(page.locator("#verify-result")).to_have_attribute("data-ok", "true")
    expect(page.locator("#verify-result")).to_contain_text("intact")
    screenshot(page, "audit-desktop")


def test_screenshots_of_the_main_pages_at_desktop_and_phone_widths(
        gosend_app, new_page, background_worker):
    """For the README and for review; each page must also fit a phone without sideways
    scrolling of the page itself (wide tables scroll inside their own box)."""
    app = gosend_app()
    url = app.server_url
    background_worker(app)
    key = new_key(app, key_type="test")
    for number in range(3):
        requests.post(url + CREATE, json={**MEDICINE_BODY, "prescription_id": f"RX-S-{number}"},
                      headers=bearer(key), timeout=10)
    username = add_user(app, "layar", "admin")
    pages = {"dashboard": "/console/dashboard", "requests": "/console/requests",
             "agencies": "/console/agencies", "services": "/console/services",
             "service-settings": "/console/services/courier/gosend_sandbox",
             "audit": "/console/audit", "queues": "/console/queues",
             "sign-in": "/console/sign-in"}
    for phone in (False, True):
        page = new_page(phone=phone)
        sign_in(page, url, username)
        for name, path in pages.items():
            page.goto(url + path)
            screenshot(page, f"{name}-{'phone' if phone else 'desktop'}")
            assert page.locator("h1").count() == 1, f"{path} needs one main heading"
            unlabelled = page.evaluate(UNLABELLED_CONTROLS)
            assert not unlabelled, f"{path}: form controls without a label: {unlabelled}"
            if phone:
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390 + 1, f"{path} scrolls sideways on a phone ({width}px)"


def test_the_api_docs_page_keeps_its_style_under_its_content_security_policy(
        gosend_app, new_page):
    """The docs page's policy allows its one stylesheet by nonce and nothing else: a real
    browser must apply the stylesheet and report no refused resource."""
    app = gosend_app()
    page = new_page()
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{app.server_url}/api/docs")
    expect(page.locator("h1")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "960px"
    assert refused == []
    screenshot(page, "api-docs-desktop")


def test_a_regency_in_wit_reads_wit_in_the_browser(gosend_app, new_page):
    app = gosend_app(region={"name": "Kabupaten Jayapura", "time_zone": "Asia/Jayapura"})
    page = new_page()
    sign_in(page, app.server_url, add_user(app, "yohana", "auditor"))
    expect(page.locator("footer")).to_contain_text("Kabupaten Jayapura")
    expect(page.locator("footer")).to_contain_text("WIT (Asia/Jayapura)")
    assert re.search(r"\d{2}-\d{2}-\d{4} 00:00 WIT", page.content())   # "today since"
    # the page's text (a random CSRF token in its markup may spell "WIB")
    assert "WIB" not in page.locator("body").inner_text()
