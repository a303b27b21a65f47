"""Callback URLs are chosen by agencies: written as the attacks on them (SSRF, port scanning).

In live mode, a callback to loopback, link-local (the metadata service), a private address,
a name that resolves to one (now or after a rebinding), or a URL with credentials is refused
and nothing is sent: a TCP listener on 127.0.0.1 counts the connections it gets. What the
console keeps of an answer is its status code, the same words for a closed port and a silent
one.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from flask import Flask, redirect
from sqlalchemy import select, update

from gateway.agencies import create_agency
from gateway.callbacks import NO_ANSWER, circuit_key, host_circuit
from gateway.errors import Invalid
from gateway.models import Agency, CallbackDelivery
from gateway.testing import ServerThread, drain
from tests.conftest import bearer

LIVE_KEY = "bGl2ZS1tb2RlLXRlc3Qta2V5LW5vdC1hLXNlY3JldCE="  # a Fernet key for tests only
FAST = {"intervals": [], "connect_timeout_seconds": 0.5, "timeout_seconds": 0.5}


class ConnectionCounter:
    """A TCP port on 127.0.0.1 that counts who connects, answers nothing and hangs up."""

    def __init__(self, silent_seconds: float = 0.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.silent_seconds = silent_seconds
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            time.sleep(self.silent_seconds)
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def counter():
    listener = ConnectionCounter()
    yield listener
    listener.close()


@pytest.fixture
def live_app(make_app):
    return make_app(mode="live", secret_key=LIVE_KEY, callbacks=FAST)


def _agency_with_url(app, url: str):
    """An agency whose stored callback URL is ``url``, as if set before these checks existed
    (the set-time check is bypassed; the send-time one must hold alone)."""
    gateway = app.extensions["gateway"]
    agency, key = create_agency(gateway, f"Agency {time.monotonic_ns()}",
                                ["medicine_delivery"], "https://agency.example/callback",
                                actor="test", key_type="live")
    with gateway.db.write() as session:
        session.execute(update(Agency).where(Agency.id == agency.id).values(callback_url=url))
    return agency, key


def _status_changes(app, key: str, body: dict) -> list[CallbackDelivery]:
    """Submit a request (it is received, then fails: no courier), work the queues, and
    return the agency's callbacks as the database has them."""
    response = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                      json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    drain(app)
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        deliveries = list(session.scalars(select(CallbackDelivery).where(
            CallbackDelivery.request_id == response.get_json()["id"])))
        session.expunge_all()
    assert deliveries
    return deliveries


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:{port}/callback",
    "https://[::ffff:127.0.0.1]:{port}/callback",
    "https://localhost:{port}/callback",
    "https://user:password@127.0.0.1:{port}/callback",
    "https://user:password@localhost:{port}/callback",
    "http://127.0.0.1:{port}/callback",
])
def test_live_callbacks_never_reach_loopback(live_app, counter, medicine_body, url):
    _agency, key = _agency_with_url(live_app, url.format(port=counter.port))
    deliveries = _status_changes(live_app, key, medicine_body)
    time.sleep(0.2)
    assert counter.connections == 0
    assert all(d.gave_up_at and d.last_error.startswith("refused: ") for d in deliveries), \
        [(d.last_error, d.gave_up_at) for d in deliveries]


def test_live_callbacks_to_the_metadata_service_are_refused_without_a_call(
        live_app, medicine_body):
    _agency, key = _agency_with_url(live_app, "http://169.254.169.254/latest/meta-data/")
    deliveries = _status_changes(live_app, key, medicine_body)
    assert {d.last_error for d in deliveries} == {"refused: the URL must start with https://"}
    _agency, key = _agency_with_url(live_app, "https://169.254.169.254/latest/meta-data/")
    deliveries = _status_changes(live_app, key, medicine_body)
    assert {d.last_error for d in deliveries} == {"refused: the address is not allowed"}
    assert all(d.gave_up_at for d in deliveries)


def test_a_name_rebound_to_loopback_after_its_first_lookup_is_never_connected_to(
        live_app, counter, medicine_body, monkeypatch):
    """DNS rebinding: the first answer is public, every later one is 127.0.0.1. A check that
    resolves, then lets the connection resolve again, connects to loopback; the connection
    must go to the very address that was checked. (DNS is the one thing faked here: there is
    no resolver to run.)"""
    real = socket.getaddrinfo
    answers = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        address = "93.184.216.34" if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, counter.port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    _agency, key = _agency_with_url(live_app, f"https://rebind.example:{counter.port}/cb")
    _status_changes(live_app, key, medicine_body)
    assert answers        # it was looked up, at send time
    assert counter.connections == 0


@pytest.mark.parametrize("url", [
    "http://agency.example/callback",                 # live mode: https only
    "https://127.0.0.1/callback",
    "https://10.1.2.3/callback",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/callback",
    "https://[fd00:ec2::254]/callback",
    "https://user:secret@agency.example/callback",    # would become Basic auth
    "ftp://agency.example/callback",
])
def test_live_mode_refuses_unsafe_callback_urls_when_they_are_set(live_app, url):
    gateway = live_app.extensions["gateway"]
    with pytest.raises(Invalid, match="callback URL refused") as refused:
        create_agency(gateway, "Dinas X", ["medicine_delivery"], url, actor="test")
    assert refused.value.code == "callback_url_refused"
    agency, _key = create_agency(gateway, "Dinas Y", ["medicine_delivery"],
                                 "https://agency.example/callback", actor="test")
    from gateway.agencies import update_agency
    with pytest.raises(Invalid, match="callback URL refused"):
        update_agency(gateway, agency.id, services=["medicine_delivery"], roles=[],
                      callback_url=url, active=True, actor="test")


def test_a_redirect_is_not_followed_even_where_loopback_is_allowed(
        gateway_make_agency, app, callback_receiver, medicine_body):
    redirector = Flask("redirector")

    @redirector.post("/callback")
    def moved():
        return redirect(callback_receiver.url, code=307)

    with ServerThread(redirector) as server:
        agency = gateway_make_agency(key_type="live", callback_url=f"{server.url}/callback")
        deliveries = _status_changes(app, agency.key, medicine_body)
    assert callback_receiver.received == []
    assert {d.last_error for d in deliveries} == {"HTTP 307"}


def test_a_closed_port_and_a_silent_one_look_the_same_to_whoever_set_the_url(
        make_app, medicine_body):
    """The port-scanner attack: point the callback at ports of an inside host and read the
    console. Both must read "no answer", not ConnectionError against ReadTimeout."""
    app = make_app(callbacks=FAST)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = ConnectionCounter(silent_seconds=2)
    try:
        seen = {}
        for name, port in (("closed", closed_port), ("silent", silent.port)):
            _agency, key = _agency_with_url(app, f"http://127.0.0.1:{port}/callback")
            seen[name] = {d.last_error for d in _status_changes(app, key, medicine_body)}
    finally:
        silent.close()
    assert seen["closed"] == seen["silent"] == {NO_ANSWER}


def test_an_endpoint_that_keeps_failing_opens_its_hosts_circuit(make_app, medicine_body):
    app = make_app(callbacks={**FAST, "circuit": {"failure_threshold": 2,
                                                  "window_seconds": 60,
                                                  "cooldown_seconds": 60}})
    failing = Flask("failing")

    @failing.post("/callback")
    def broken():
        return "", 503

    with ServerThread(failing) as server:
        url = f"{server.url}/callback"
        _agency, key = _agency_with_url(app, url)
        first = _status_changes(app, key, medicine_body)
        later = _status_changes(app, key, medicine_body)
    circuit = host_circuit(app.extensions["gateway"])
    assert circuit.state(circuit_key(url)) == "open"
    assert "HTTP 503" in {d.last_error for d in first}
    assert {d.attempts for d in later} == {0}     # no call made while it is open
    assert all(d.last_error.startswith("host unavailable") for d in later)
