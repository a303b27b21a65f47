"""Signing in and out of the console, CSRF, throttling and the security headers."""

from __future__ import annotations

from gateway.console import throttle
from gateway.testing import ConsoleClient
from tests.console.conftest import PASSWORD, sign_in


def test_pages_need_a_signed_in_user(app):
    response = app.test_client().get("/console/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/sign-in?next=/console/dashboard")


def test_signing_in_opens_the_page_asked_for_and_signing_out_ends_the_session(app):
    console = sign_in(app, "auditor", "siti")
    page = console.get("/console/dashboard")
    assert page.status_code == 200 and "siti" in page.get_data(as_text=True)
    old_cookie = console.client.get_cookie("gateway_console").value
    assert console.post("/console/sign-out").status_code == 302
    assert console.get("/console/dashboard").status_code == 302
    # The old cookie names a session that no longer exists: replaying it gets nowhere.
    replay = app.test_client()
    replay.set_cookie("gateway_console", old_cookie)
    assert replay.get("/console/dashboard").status_code == 302


def test_sign_in_starts_a_new_session_whatever_cookie_came_before(app):
    console = sign_in(app, "admin", "budi")
    before = console.client.get_cookie("gateway_console").value
    console.post("/console/sign-in", {"username": "budi", "password": PASSWORD})
    after = console.client.get_cookie("gateway_console").value
    assert after != before
    stale = app.test_client()
    stale.set_cookie("gateway_console", before)
    assert stale.get("/console/dashboard").status_code == 302


def test_a_form_posted_without_its_csrf_token_is_refused(app):
    console = sign_in(app, "admin", "citra")
    response = console.post("/console/sign-out", csrf=False)
    assert response.status_code == 400
    assert "did not come from this console" in response.get_data(as_text=True)
    forged = console.post("/console/sign-out", {"csrf_token": "forged"})
    assert forged.status_code == 400
    assert console.get("/console/dashboard").status_code == 200  # still signed in


def test_wrong_passwords_are_throttled_even_before_the_right_one(app):
    sign_in(app, "admin", "dewi")
    browser = ConsoleClient(app.test_client(), "dewi", "admin")
    browser.get("/console/sign-in")
    for _ in range(throttle.MAX_FAILURES):
        wrong = browser.post("/console/sign-in", {"username": "dewi", "password": "guess-guess"})
        assert wrong.status_code == 401
    right = browser.post("/console/sign-in", {"username": "dewi", "password": PASSWORD})
    assert right.status_code == 429
    assert int(right.headers["Retry-After"]) > 0


def test_console_pages_carry_the_security_headers(app):
    response = app.test_client().get("/console/sign-in")
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_is_http_only_and_secure_in_live_mode(make_app):
    app = make_app(mode="live", secret_key="tH1s-is-a-test-only-key-AAAAAAAAAAAAAAAAAAA=")
    sign_in_page = app.test_client()
    sign_in_page.get("/console/sign-in")
    cookie = sign_in_page.get_cookie("gateway_console")
    assert cookie.http_only and cookie.secure and cookie.same_site == "Lax"


def test_the_language_choice_is_kept_on_the_account(app):
    console = sign_in(app, "operator", "eka")
    console.post("/console/language", {"language": "id", "next": "/console/dashboard"})
    other = ConsoleClient(app.test_client(), "eka", "operator")
    other.get("/console/sign-in")
    other.post("/console/sign-in", {"username": "eka", "password": PASSWORD})
    page = other.get("/console/dashboard").get_data(as_text=True)
    assert 'lang="id"' in page and "Keluar" in page
