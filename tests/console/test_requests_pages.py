"""The console's request pages: search, the whole timeline, masking, cancel and retry."""

from __future__ import annotations

import re

from rq import Queue

from gateway.batch import READY_KEY
from gateway.testing import drain
from tests.conftest import MEDICINE_BODY


def _submit(agency, **changes):
    body = {**MEDICINE_BODY, **changes}
    response = agency.post("/api/v1/services/medicine_delivery/requests", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_search_finds_requests_by_reference_and_status(app, agency, console_as):
    first = _submit(agency, prescription_id="RX-ALPHA-1")
    second = _submit(agency, prescription_id="RX-BETA-2")
    console = console_as("auditor")
    page = console.get("/console/requests?reference=RX-BETA-2").get_data(as_text=True)
    assert f'id="request-{second}"' in page and f'id="request-{first}"' not in page
    everything = console.get("/console/requests?status=received").get_data(as_text=True)
    assert f'id="request-{first}"' in everything and f'id="request-{second}"' in everything
    none = console.get("/console/requests?status=delivered").get_data(as_text=True)
    assert "request-" not in re.sub(r'id="request-(filters|list)"', "", none)


def test_personal_data_is_masked_for_an_auditor_and_shown_on_demand_to_an_operator(
        app, agency, console_as):
    request_id = _submit(agency)
    name = MEDICINE_BODY["patient"]["name"]
    auditor = console_as("auditor")
    page = auditor.get(f"/console/requests/{request_id}?personal=1").get_data(as_text=True)
    assert name not in page and MEDICINE_BODY["patient"]["nik"] not in page
    assert "patient.name" in page and "Show personal data" not in page
    operator = console_as("operator")
    masked = operator.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert name not in masked
    shown = operator.get(f"/console/requests/{request_id}?personal=1").get_data(as_text=True)
    assert name in shown
    audit = console_as("admin").get("/console/audit?action=request.personal_data.read")
    if audit.status_code == 200:  # the audit page lists who read it
        assert operator.username in audit.get_data(as_text=True)


def test_an_operator_cancels_a_request_and_the_timeline_says_who(app, agency, console_as):
    request_id = _submit(agency)
    operator = console_as("operator", "wayan")
    page = operator.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert "Cancel request" in page
    response = operator.post(f"/console/requests/{request_id}/cancel")
    assert response.status_code == 302
    assert agency.get(f"/api/v1/requests/{request_id}").get_json()["status"] == "cancelled"
    page = operator.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert "admin:wayan" in page and "Cancel request" not in page
    again = operator.post(f"/console/requests/{request_id}/cancel", follow_redirects=True)
    assert "already cancelled" in again.get_data(as_text=True)


def test_an_auditor_sees_no_actions_and_cannot_post_them(app, agency, console_as):
    request_id = _submit(agency)
    auditor = console_as("auditor")
    page = auditor.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert "Cancel request" not in page and "Retry dispatch" not in page
    assert auditor.post(f"/console/requests/{request_id}/cancel").status_code == 403
    assert auditor.post(f"/console/requests/{request_id}/retry").status_code == 403
    assert agency.get(f"/api/v1/requests/{request_id}").get_json()["status"] == "received"


def test_retry_dispatch_requeues_a_request_no_courier_holds(app, agency, console_as,
                                                            gateway_redis):
    request_id = _submit(agency)
    drain(app)   # no courier is enabled in tests: the request ends without one
    operator = console_as("operator")
    status = agency.get(f"/api/v1/requests/{request_id}").get_json()["status"]
    page = operator.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert status in ("failed", "no_driver") and "Retry dispatch" not in page
    refused = operator.post(f"/console/requests/{request_id}/retry", follow_redirects=True)
    assert "only a request no courier holds" in refused.get_data(as_text=True)

    waiting = _submit(agency, prescription_id="RX-WAIT-1")
    gateway_redis.delete(READY_KEY)                                  # its batch was lost
    Queue("dispatch", connection=gateway_redis).empty()
    assert "Retry dispatch" in operator.get(f"/console/requests/{waiting}").get_data(
        as_text=True)
    assert operator.post(f"/console/requests/{waiting}/retry").status_code == 302
    drain(app)
    assert agency.get(f"/api/v1/requests/{waiting}").get_json()["status"] != "received"
