"""Apps whose notices go to the WhatsApp and SMS simulators, served over real HTTP so that the
simulators' receipts reach them.

The simulators' clocks do not run: a test moves a message on itself (:func:`step`), so what
arrives when is the test's to say.
"""

from __future__ import annotations

import json

import pytest

from gateway.notifiers.sms.simulator import SmsSimulator
from gateway.notifiers.whatsapp.simulator import WhatsAppSimulator
from gateway.testing import ServerThread, free_port

WA = {"access_token": "wa-test-access-token", "app_secret": "wa-test-app-secret-000000",
      "verify_token": "wa-test-verify-token-00000", "phone_number_id": "106540352242922"}
SMS = {"account_sid": "AC" + "0" * 30 + "42", "auth_token": "sms-test-auth-token-000000"}


#: words of the suite's request bodies (tests/conftest.py's MEDICINE_BODY, the public
#: pages' DISTINCTIVE, test_notice_privacy's bodies) that no notice may carry: drug names,
#: NIKs, addresses and their parts, notes, surnames
PATIENT_DATA = ("Amlodipine", "3510011203650002", "Parman", "Rumah pagar hijau", "Aminah",
                "Zylotrexamab", "Quetzalcoatl", "Xylofon", "Marzipan", "Wirasaba",
                "Vindobona", "Quokkaville", "Xanthippe", "Brobdingnag", "Hrothgar",
                "Ondskapsfull", "Quaxelbrot", "Gurdaspur")


def assert_no_patient_data(sim) -> None:
    """Run when each test's simulator stops: so every message every notifier simulator
    received during the suite is read, whatever the test was about."""
    text = everything_received(sim)
    found = [word for word in PATIENT_DATA if word in text]
    assert not found, f"a notifier simulator received patient data: {found}"


@pytest.fixture
def whatsapp_sim():
    sim = WhatsAppSimulator(slow_seconds=2.0, access_token=WA["access_token"],
                            app_secret=WA["app_secret"], phone_number_id=WA["phone_number_id"])
    with ServerThread(sim.create_app()) as server:
        sim.url = server.url
        yield sim
    assert_no_patient_data(sim)


@pytest.fixture
def sms_sim():
    sim = SmsSimulator(slow_seconds=2.0, **SMS)
    with ServerThread(sim.create_app()) as server:
        sim.url = server.url
        yield sim
    assert_no_patient_data(sim)


@pytest.fixture
def notify_app(make_app, whatsapp_sim, sms_sim):
    """``notify_app(**overrides)``: an app on the repository's config whose medicine requests
    make an ``accepted`` notice (and no other unless ``services`` is overridden), sent by
    the two simulators; no quiet hours unless a test sets them."""
    servers = []

    def make(notices=None, notifiers=None, **overrides):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = {
            "notifiers": {
                "whatsapp_sandbox": {"enabled": True, "base_url": whatsapp_sim.url,
                                     "timeout_seconds": 1, "cost": 350, **WA},
                "sms_sandbox": {"enabled": True, "base_url": sms_sim.url,
                                "timeout_seconds": 1, "cost": 400,
                                "status_callback_url":
                                    f"{base}/webhooks/notifiers/sms_sandbox", **SMS},
                **(notifiers or {})},
            "notices": {"quiet_hours": None, **(notices or {})},
            # the accepted notice only: a request with no courier fails (its own notice,
            # tested in test_status_notices.py with a courier)
            "services": {"medicine_delivery": {"couriers": [], "notices": ["accepted"]}},
            **overrides}
        app = make_app(**config)
        server = ServerThread(app, port=port).__enter__()
        servers.append(server)
        app.server_url = base
        whatsapp_sim.webhook_url = f"{base}/webhooks/notifiers/whatsapp_sandbox"
        return app

    yield make
    for server in servers:
        server.__exit__(None, None, None)


def step(sim, message_id: str, status: str | None = None) -> None:
    """Move a simulated message to ``status`` (default: its next one) and send what is owed:
    the receipts reach the gateway before this returns."""
    with sim.lock:
        booking = sim.bookings[message_id]
        if status is None:
            sim.advance(booking)
        else:
            sim.set_status(booking, status)
    sim.flush_webhooks()


def whatsapp_sent(sim) -> list[dict]:
    """Every message body the WhatsApp simulator was asked to send."""
    return [r["json"] for r in sim.requests if r["path"].endswith("/messages")]


def sms_sent(sim) -> list[dict]:
    """Every form the SMS simulator was asked to send."""
    return [r["form"] for r in sim.requests if r["path"].endswith("/Messages.json")]


def everything_received(*sims) -> str:
    """All a simulator ever got (calls and the messages it holds), as one text to search."""
    return json.dumps([[sim.requests, [sim.describe(b) for b in sim.bookings.values()]]
                       for sim in sims], ensure_ascii=False, default=str)
