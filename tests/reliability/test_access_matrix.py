"""The access matrix: every route, tried by every kind of caller, answers as the table says.

Callers: nobody, a malformed key, a revoked key, another agency's key, the owner's test key,
the owner's live key, and an agency with the fleet_dispatch role. A route added to the app
without a row here fails ``test_every_route_has_a_row``. (Console roles join the table when
the console exists.)
"""

from __future__ import annotations

import pytest

from gateway.agencies import create_agency, issue_key, revoke_key
from gateway.testing import drain
from tests.conftest import MEDICINE_BODY, bearer

CALLERS = ("nobody", "malformed", "revoked", "stranger", "owner_test", "owner_live", "fleet")
PUBLIC = dict.fromkeys(CALLERS)

# endpoint -> (method, path template, body, {caller: expected status})
DENIED = {"nobody": 401, "malformed": 401, "revoked": 401}
ROWS = {
    "health.healthz": ("GET", "/healthz", None, {c: 200 for c in CALLERS}),
    "health.readyz": ("GET", "/readyz", None, {c: 200 for c in CALLERS}),
    "openapi.openapi_json": ("GET", "/api/openapi.json", None, {c: 200 for c in CALLERS}),
    "openapi.api_docs": ("GET", "/api/docs", None, {c: 200 for c in CALLERS}),
    "webhooks.receive": ("POST", "/webhooks/nosuchcourier", {}, {c: 404 for c in CALLERS}),
    "api_v1.list_services": ("GET", "/api/v1/services", None, {
        **DENIED, "stranger": 200, "owner_test": 200, "owner_live": 200, "fleet": 200}),
    "api_v1.create_service_request": (
        "POST", "/api/v1/services/medicine_delivery/requests", "medicine", {
            **DENIED, "stranger": 202, "owner_test": 202, "owner_live": 202, "fleet": 403}),
    "api_v1.list_requests": ("GET", "/api/v1/requests", None, {
        **DENIED, "stranger": 200, "owner_test": 200, "owner_live": 200, "fleet": 200}),
    "api_v1.get_request": ("GET", "/api/v1/requests/{own}", None, {
        **DENIED, "stranger": 404, "owner_test": 200, "owner_live": 200, "fleet": 404}),
    "api_v1.request_view": ("GET", "/api/v1/requests/{own}/fhir", None, {
        **DENIED, "stranger": 404, "owner_test": 200, "owner_live": 200, "fleet": 404}),
    "api_v1.cancel_request": ("POST", "/api/v1/requests/{own}/cancel", None, {
        **DENIED, "stranger": 404, "fleet": 404, "owner_test": 200, "owner_live": 409}),
    "fleet.list_jobs": ("GET", "/api/v1/fleet/jobs", None, {
        **DENIED, "stranger": 403, "owner_test": 403, "owner_live": 403, "fleet": 200}),
    "fleet.advance": ("POST", "/api/v1/fleet/jobs/nosuchjob/accept", None, {
        **DENIED, "stranger": 403, "owner_test": 403, "owner_live": 403, "fleet": 404}),
}


@pytest.fixture
def callers(app):
    gateway = app.extensions["gateway"]
    _owner, live = create_agency(gateway, "Owner", ["medicine_delivery"], actor="test")
    test = issue_key(gateway, "Owner", "test", actor="test")
    _stranger, stranger = create_agency(gateway, "Stranger", ["medicine_delivery"], actor="test")
    _fleet, fleet = create_agency(gateway, "Fleet office", [], roles=["fleet_dispatch"],
                                  actor="test")
    revoked = issue_key(gateway, "Owner", "live", actor="test")
    revoke_key(gateway, "_".join(revoked.split("_")[:3]), actor="test")
    keys = {"malformed": "Bearer not-a-key", "revoked": revoked, "stranger": stranger,
            "owner_test": test, "owner_live": live, "fleet": fleet}
    return {name: ({} if name == "nobody" else
                   {"Authorization": value} if name == "malformed" else bearer(value))
            for name, value in [("nobody", None), *keys.items()]}


def test_every_route_has_a_row(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == set(ROWS), "add a row to ROWS for each new route"


@pytest.mark.parametrize("endpoint", sorted(ROWS))
def test_each_caller_gets_what_the_matrix_says(app, callers, endpoint):
    method, template, body, expected = ROWS[endpoint]
    client = app.test_client()
    seen = {}
    for caller in CALLERS:
        own = client.post("/api/v1/services/medicine_delivery/requests",
                          json={**MEDICINE_BODY, "prescription_id": f"RX-{caller}"},
                          headers=callers["owner_test"]).get_json()["id"]
        if caller == "owner_live":  # a request that has ended cannot be cancelled again
            client.post(f"/api/v1/requests/{own}/cancel", headers=callers["owner_test"])
        payload = {**MEDICINE_BODY, "prescription_id": f"RX-new-{caller}"} \
            if body == "medicine" else body
        response = client.open(template.format(own=own), method=method, json=payload,
                               headers=callers[caller])
        seen[caller] = response.status_code
    drain(app)
    assert seen == expected
