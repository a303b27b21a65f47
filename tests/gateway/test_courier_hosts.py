"""Attacks on where a courier's credentials are sent: a ``base_url`` that looks like an
allowed provider but is not, at start-up and through the console; a sandbox entry that looks
like a simulator but reaches a live host.

A courier may call only the origins (scheme, host, port) that the deploy's ``gateway.yaml``
lists in ``courier_hosts``, compared parsed; a sandbox entry only a simulator on this machine
or its provider's own sandbox, with the same comparison.
"""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from gateway.couriers.goride.adapter import GoRideConfigSchema, GoRideCourier
from gateway.couriers.gosend.adapter import GoSendConfigSchema, GoSendCourier
from gateway.couriers.grabexpress.adapter import GrabExpressConfigSchema, GrabExpressCourier
from gateway.couriers.lalamove.adapter import LalamoveConfigSchema, LalamoveCourier
from gateway.errors import StartupError
from gateway.models import ConfigVersion
from gateway.settings import ConfigError
from tests.console.conftest import sign_in
from tests.console.page import by_id

ALLOWED = "https://kilat-api.gojekapi.com"           # listed in the shipped gateway.yaml
CREDENTIALS = {"client_id": "banyuwangi", "pass_key": "live-pass-key-0001",
               "webhook_token": "live-webhook-token-0001"}
LOOK_ALIKES = [
    "https://kilat-api.gojekapi.com@evil.example/",            # userinfo: the host is evil
    "https://kilat-api.gojekapi.com:443@evil.example",
    "https://evil.example/..",
    "https://evil.example/kilat-api.gojekapi.com",
    "https://kilat-api.gojekapi.com.evil.example",              # a look-alike host
    "https://kilat-api.gojekapi.com.",
    "https://kilat-api.gojekapі.com",                           # Cyrillic і
    "http://kilat-api.gojekapi.com",                            # downgraded to plain HTTP
    "https://kilat-api.gojekapi.com:8443",                      # another port
    "https://kilat-api.gojekapi.com/../..",                     # path tricks
    "https://kilat-api.gojekapi.com/%2e%2e/x",
    "https://kilat-api.gojekapi.com/v1?next=https://evil.example",
    "ftp://kilat-api.gojekapi.com",
]


def _problem_paths(exc: ConfigError) -> list[str]:
    return [path for _file, path, _reason in exc.problems]


@pytest.mark.parametrize("base_url", LOOK_ALIKES)
def test_a_live_entry_pointing_anywhere_but_a_listed_host_stops_start_up(make_app,
                                                                         base_url):
    with pytest.raises(ConfigError) as refused:
        make_app(couriers={"gosend": {"base_url": base_url, **CREDENTIALS}})
    assert "gosend.base_url" in _problem_paths(refused.value)


@pytest.mark.parametrize("base_url", [ALLOWED, "https://KILAT-API.gojekapi.com:443/",
                                      f"{ALLOWED}/partner/v1"])
def test_a_listed_host_is_accepted_however_it_is_spelled(make_app, base_url):
    app = make_app(couriers={"gosend": {"base_url": base_url, **CREDENTIALS}})
    assert app.extensions["gateway"].courier_configs["gosend"]["base_url"] == base_url


@pytest.mark.parametrize("base_url", LOOK_ALIKES[:9])
def test_the_console_refuses_a_base_url_off_the_list_at_its_field(make_app, base_url):
    app = make_app(couriers={"gosend": {"base_url": ALLOWED, **CREDENTIALS}})
    admin = sign_in(app, "admin")
    response = admin.post("/console/services/courier/gosend", {"base_url": base_url})
    assert response.status_code == 422
    assert by_id(response, "error-base_url").text
    with app.extensions["gateway"].db.read() as session:
        assert session.scalars(select(ConfigVersion)).all() == []
    assert app.extensions["gateway"].couriers["gosend"].base_url == ALLOWED


def test_the_list_of_hosts_cannot_be_changed_from_the_console(make_app):
    app = make_app(couriers={"gosend": {"base_url": ALLOWED, **CREDENTIALS}})
    admin = sign_in(app, "admin")
    assert admin.get("/console/services/core/gateway").status_code == 404
    response = admin.post("/console/services/courier/gosend",
                          {"courier_hosts": "- https://evil.example\n"})
    assert response.status_code in (302, 422)
    with app.extensions["gateway"].db.read() as session:
        assert all("courier_hosts" not in v.data
                   for v in session.scalars(select(ConfigVersion)))


# -- the sandbox check ----------------------------------------------------------------------
GOSEND = ({"client_id": "a", "pass_key": "b", "webhook_token": "w" * 16},
          GoSendConfigSchema, GoSendCourier)
GORIDE = ({"client_id": "a", "pass_key": "b", "webhook_token": "w" * 16},
          GoRideConfigSchema, GoRideCourier)
LALAMOVE = ({"api_key": "pk", "api_secret": "sk"}, LalamoveConfigSchema, LalamoveCourier)
GRAB = ({"client_id": "a", "client_secret": "b", "webhook_auth": "w" * 16,
         "token_url": "http://127.0.0.1:8183/grabid/v1/oauth2/token"},
        GrabExpressConfigSchema, GrabExpressCourier)


@pytest.mark.parametrize("adapter", [GOSEND, GORIDE, LALAMOVE, GRAB],
                         ids=["gosend", "goride", "lalamove", "grab"])
@pytest.mark.parametrize("base_url", ["http://127.0.0.1.evil.example",
                                      "http://127.0.0.1.evil.example:8181",
                                      "http://localhost.evil.example:8181",
                                      "http://evil.example:8181/127.0.0.1"])
def test_a_sandbox_entry_that_only_looks_local_is_refused(adapter, base_url):
    credentials, schema, courier = adapter
    config = {**schema().load({**credentials, "base_url": base_url}), "sandbox": True}
    with pytest.raises(StartupError, match="marked sandbox"):
        courier("sandbox_entry", config)


def test_a_grab_sandbox_entry_cannot_climb_out_of_grabs_sandbox_path():
    """``/grab-express-sandbox/../grab-express`` starts with the sandbox path, and is the
    live API once the HTTP library removes the dot segments."""
    base_url = "https://partner-api.grab.com/grab-express-sandbox/../grab-express"
    assert requests.Request("POST", f"{base_url}/v1/deliveries").prepare().url == \
        "https://partner-api.grab.com/grab-express/v1/deliveries"
    credentials, schema, courier = GRAB
    config = {**schema().load({**credentials, "base_url": base_url}), "sandbox": True}
    with pytest.raises(StartupError, match="marked sandbox"):
        courier("grab_sandbox", config)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8181", "http://localhost:8181",
                                      "http://[::1]:8181", "https://127.0.0.1:9443/sim"])
def test_a_sandbox_entry_on_a_simulator_of_this_machine_is_accepted(base_url):
    credentials, schema, courier = GOSEND
    config = {**schema().load({**credentials, "base_url": base_url}), "sandbox": True}
    assert courier("gosend_sandbox", config).base_url == base_url.rstrip("/")


def test_a_redirect_from_a_provider_does_not_carry_our_credentials_elsewhere():
    """An allowed host that answers with a redirect would otherwise have requests send our
    Pass-Key to wherever it points: providers answer, they do not redirect."""
    from flask import Flask, redirect, request

    from gateway.couriers import CourierError
    from gateway.testing import ServerThread

    stolen = []
    catcher = Flask("catcher")

    @catcher.route("/<path:rest>", methods=["GET", "POST", "PUT"])
    def steal(rest):
        stolen.append(dict(request.headers))
        return {"orderNo": "X"}

    with ServerThread(catcher) as elsewhere:
        redirector = Flask("redirector")

        @redirector.route("/<path:rest>", methods=["GET", "POST", "PUT"])
        def bounce(rest):
            return redirect(f"{elsewhere.url}/{rest}", 307)

        with ServerThread(redirector) as provider:
            credentials, schema, courier = GOSEND
            config = {**schema().load({**credentials, "base_url": provider.url}),
                      "sandbox": True}
            with pytest.raises(CourierError):
                courier("gosend_sandbox", config).get_status("GK-1")
    assert stolen == []
