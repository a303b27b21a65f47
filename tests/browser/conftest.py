"""Browser fixtures: Debian's Chromium driven by Playwright, against a gateway served over
real HTTP, with a worker thread draining the queues so requests really move.

The browser is found at ``$GATEWAY_CHROMIUM`` or ``/usr/bin/chromium`` (``scripts/test``
installs Debian's ``chromium``; Playwright's own browser download is not used). Screenshots
go to ``$GATEWAY_SCREENSHOT_DIR`` (default ``build/screenshots``).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from gateway.console.users import create_admin
from gateway.testing import drain

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("GATEWAY_SCREENSHOT_DIR", ROOT / "build" / "screenshots"))
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    path = os.environ.get("GATEWAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is needed for the console tests: run scripts/test (it installs "
                    "Debian's chromium) or set GATEWAY_CHROMIUM", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """``new_page(phone=False)``: a page in a fresh context (its own cookies)."""
    contexts = []

    def make(phone: bool = False, locale: str = "en-US"):
        context = browser.new_context(viewport=PHONE if phone else DESKTOP, locale=locale,
                                      is_mobile=phone, has_touch=phone)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())   # "are you sure?" confirmations
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def background_worker():
    """``background_worker(app)``: drain the app's queues (or ``queues=[...]``, only those)
    every 0.2 s until the test ends."""
    stops = []

    def start(app, queues=None):
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                drain(app, queues)
                stop.wait(0.2)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        stops.append((stop, thread))

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(timeout=10)


def add_user(app, username: str, role: str, language: str = "en") -> str:
    create_admin(app.extensions["gateway"], username, PASSWORD, role, language=language)
    return username


def sign_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/console/sign-in")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{base_url}/console/dashboard")


def screenshot(page, name: str) -> Path:
    """Save the whole page as ``<name>.png``; the README and reviewers use these."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def staff_of(app, agency_id: str, username: str, key_type: str = "test") -> str:
    """A new agency_staff console account of ``agency_id`` reading Indonesian: its name."""
    create_admin(app.extensions["gateway"], username, PASSWORD, "agency_staff",
                 language="id", agency=agency_id, key_type=key_type)
    return username


def sign_in_as_staff(page, url: str, username: str) -> None:
    page.goto(f"{url}/console/sign-in")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{url}/console/requests")
