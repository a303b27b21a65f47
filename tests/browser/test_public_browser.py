"""The citizen's side in a real headless Chromium at 360 px: the tracking page follows a
request to delivered without JavaScript, the survey is answered, and the answer shows in the
console's IKM."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from gateway.models import SurveyAnswer
from tests.browser.conftest import add_user, screenshot, sign_in
from tests.conftest import MEDICINE_BODY, bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"
NARROW = {"width": 360, "height": 740}


def test_tracking_and_survey_on_a_360_px_phone_reach_the_consoles_ikm(
        gosend_app, browser, new_page, background_worker):
    app = gosend_app()
    url = app.server_url
    background_worker(app)
    key = new_key(app, key_type="test", name="Puskesmas Sobo")
    made = requests.post(url + CREATE, json=MEDICINE_BODY, headers=bearer(key),
                         timeout=10).json()
    token = made["tracking_url"].rsplit("/", 1)[1]
    context = browser.new_context(viewport=NARROW, is_mobile=True, has_touch=True,
                                  java_script_enabled=False, locale="id-ID")
    try:
        page = context.new_page()
        for _ in range(90):                       # a citizen reloading the page
            page.goto(f"{url}/t/{token}")
            if page.locator("#status").inner_text() == "Sudah diterima":
                break
            page.wait_for_timeout(500)
        expect(page.locator("#status")).to_have_text("Sudah diterima")
        expect(page.locator("#office")).to_contain_text("Puskesmas Sobo")
        for word in ("Siti", "Aminah", "Parman", "Amlodipine"):
            expect(page.locator("body")).not_to_contain_text(word)
        # the inline style applies under the page's CSP; nothing is wider than the phone
        assert page.evaluate("getComputedStyle(document.querySelector('.now'))"
                             ".backgroundColor") == "rgb(238, 246, 238)"
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        screenshot(page, "tracking-phone")
        page.click("text=English")
        expect(page.locator("#status")).to_have_text("Delivered")
        page.click("#survey")
        expect(page.locator("h1")).to_have_text("Satisfaction survey")
        for number in range(1, 10):
            page.check(f"input[name=u{number}][value='{4 if number != 4 else 3}']")
        page.fill("#comment", "Quick and friendly")
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        screenshot(page, "survey-phone")
        page.click("button[type=submit]")
        expect(page.locator("body")).to_contain_text("Your answer has been recorded.")
    finally:
        context.close()
    with app.extensions["gateway"].db.read() as session:
        (answer,) = session.query(SurveyAnswer).all()
        assert (answer.u1, answer.u4) == (4, 3)
    console = new_page()
    sign_in(console, url, add_user(app, "ika", "auditor"))
    console.goto(f"{url}/console/skm")
    # eight 4s and a 3: 35/9 x 25 = 97.22, category A
    expect(console.locator("#ikm")).to_have_text("97.22")
    expect(console.locator("#respondents")).to_have_text("1")
    expect(console.locator("#category")).to_contain_text("A")
