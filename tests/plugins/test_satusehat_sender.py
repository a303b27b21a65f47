"""The optional SATUSEHAT sender, watched from a SATUSEHAT simulator on 127.0.0.1 that follows
the published endpoints (token, FHIR Bundle): what it receives, with which token, and what
the request's timeline says of each outcome."""

from __future__ import annotations

import time

import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway.models import ServiceRequest
from gateway.testing import ServerThread, drain, wait_for_status
from plugins.medicine_delivery.satusehat_simulator import SatusehatSimulator
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"
ORG = "100011961"
CLIENT = {"client_id": "puskesmas-sobo-client", "client_secret": "s3cret-for-tests-only"}


@pytest.fixture
def satusehat():
    sim = SatusehatSimulator(organization_id=ORG, **CLIENT)
    with ServerThread(sim.create_app()) as server:
        sim.url = server.url
        yield sim


@pytest.fixture
def sender_app(gosend_app, satusehat):
    def make(core=None, **settings):
        config = {"enabled": True, "auth_url": f"{satusehat.url}/oauth2/v1",
                  "base_url": f"{satusehat.url}/fhir-r4/v1", "retry_intervals": [0, 0, 0],
                  "timeout_seconds": 2, **CLIENT, **settings}
        return gosend_app(services={"medicine_delivery": {
            "couriers": ["gosend_sandbox"], "satusehat": config}}, **(core or {}))

    return make


@pytest.fixture
def body(medicine_body):
    medicine_body["patient"]["ihs_number"] = "P02478375538"
    medicine_body["items"][0]["kfa_code"] = "93000317"
    medicine_body["satusehat"] = {"organization_id": ORG}
    return medicine_body


def deliver(app, key, body) -> str:
    response = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    request_id = response.get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    drain(app)
    return request_id


def notes(app, key, request_id) -> list[str]:
    detail = app.test_client().get(f"/api/v1/requests/{request_id}", headers=bearer(key))
    return [e["detail"] for e in detail.get_json()["timeline"] if e["source"] == "satusehat"]


def not_sent(app, key, request_id, satusehat, reason: str) -> None:
    """Neither the credentials nor the record left the gateway, and the timeline says why."""
    assert satusehat.received == [] and satusehat.tokens_issued == 0
    assert notes(app, key, request_id) == [f"not sent to SATUSEHAT: {reason}"]
    assert pending_job(app, request_id) is None


def pending_job(app, request_id):
    with app.extensions["gateway"].db.read() as session:
        return session.get(ServiceRequest, request_id).pending_job


def test_a_delivered_request_is_sent_with_a_bearer_token_and_recorded(sender_app, satusehat,
                                                                      body):
    app = sender_app()
    key = new_key(app, key_type="test")
    first = deliver(app, key, body)
    body["prescription_id"] = "RX-2026-000124"
    second = deliver(app, key, body)

    assert [r["status"] for r in satusehat.received] == [200, 200]
    sent = Bundle.model_validate(satusehat.accepted()[0])
    dispense = next(e.resource for e in sent.entry
                    if e.resource.get_resource_type() == "MedicationDispense")
    assert dispense.subject.reference == "Patient/P02478375538"
    assert dispense.whenHandedOver is not None
    assert satusehat.tokens_issued == 1     # the token is kept until it expires
    for request_id in (first, second):
        assert notes(app, key, request_id) == ["sent to SATUSEHAT (2 resources)"]
        assert pending_job(app, request_id) is None


def test_a_token_is_fetched_again_when_it_expires_or_is_refused(sender_app, satusehat, body):
    satusehat.token_lifetime = 1
    app = sender_app()
    key = new_key(app, key_type="test")
    deliver(app, key, body)
    time.sleep(1.1)
    satusehat.token_lifetime = 3599
    body["prescription_id"] = "RX-2026-000124"
    deliver(app, key, body)
    assert satusehat.tokens_issued == 2
    assert [r["status"] for r in satusehat.received] == [200, 200]   # never an expired token

    satusehat.tokens.clear()        # SATUSEHAT forgot the token we hold: 401, then a new one
    body["prescription_id"] = "RX-2026-000125"
    third = deliver(app, key, body)
    assert [r["status"] for r in satusehat.received][-2:] == [401, 200]
    assert notes(app, key, third) == ["sent to SATUSEHAT (2 resources)"]


def test_an_unavailable_satusehat_is_retried_and_each_try_recorded(sender_app, satusehat, body):
    app = sender_app()
    key = new_key(app, key_type="test")
    satusehat.fail_next(2, 503)
    request_id = deliver(app, key, body)
    assert [r["status"] for r in satusehat.received] == [503, 503, 200]
    assert notes(app, key, request_id) == ["SATUSEHAT unavailable (HTTP 503); will retry"] * 2 \
        + ["sent to SATUSEHAT (2 resources)"]


def test_when_retries_are_spent_the_failure_is_recorded_and_nothing_stays_owed(
        sender_app, satusehat, body):
    app = sender_app(retry_intervals=[0])
    key = new_key(app, key_type="test")
    satusehat.fail_next(5, 503)
    request_id = deliver(app, key, body)
    assert len(satusehat.received) == 2
    detail = app.test_client().get(f"/api/v1/requests/{request_id}", headers=bearer(key))
    assert detail.get_json()["status"] == "delivered"
    assert "satusehat failed after retries" in [e["detail"] for e in
                                                detail.get_json()["timeline"]]
    assert pending_job(app, request_id) is None


def test_a_refusal_is_recorded_with_the_operation_outcome_code_and_not_retried(
        sender_app, satusehat, body):
    app = sender_app()
    key = new_key(app, key_type="test")
    body["satusehat"]["organization_id"] = "100099999"   # not this client's organization
    request_id = deliver(app, key, body)
    assert [r["status"] for r in satusehat.received] == [403]
    assert notes(app, key, request_id) == ["refused by SATUSEHAT (record: business-rule)"]
    assert pending_job(app, request_id) is None


def test_wrong_credentials_are_a_refusal_and_never_reach_the_fhir_endpoint(
        sender_app, satusehat, body):
    app = sender_app(client_secret="not-the-secret")
    key = new_key(app, key_type="test")
    request_id = deliver(app, key, body)
    assert satusehat.received == [] and satusehat.tokens_issued == 0
    assert notes(app, key, request_id) == ["refused by SATUSEHAT (token: value)"]


def test_a_request_without_the_references_satusehat_needs_is_not_sent(
        sender_app, satusehat, medicine_body):
    app = sender_app()
    key = new_key(app, key_type="test")
    not_sent(app, key, deliver(app, key, medicine_body), satusehat,
             "it lacks satusehat.organization_id, patient.ihs_number, items.0.kfa_code")


def test_test_keys_never_reach_a_live_satusehat(sender_app, satusehat, body):
    app = sender_app(sandbox=False)
    key = new_key(app, key_type="test")
    not_sent(app, key, deliver(app, key, body), satusehat,
             "a test request, or any in sandbox mode, goes only to a SATUSEHAT sandbox")


def test_credentials_go_only_to_allowed_hosts(sender_app, satusehat, body):
    """An operator's typo or an attacker with console access cannot point the sender (and
    the organization's credentials) at the metadata service or any host not allowed."""
    from gateway.settings import ConfigError

    with pytest.raises(ConfigError, match="satusehat.auth_url"):
        sender_app(auth_url="http://169.254.169.254/oauth2/v1")
    staging = "https://api-satusehat-stg.dto.kemkes.go.id"
    app = sender_app(core={"courier_hosts": []}, auth_url=f"{staging}/oauth2/v1",
                     base_url=f"{staging}/fhir-r4/v1")
    key = new_key(app, key_type="test")
    request_id = deliver(app, key, body)
    assert satusehat.tokens_issued == 0
    (note,) = notes(app, key, request_id)
    assert note.startswith("not sent to SATUSEHAT: auth_url:") and "courier_hosts" in note


def test_the_sender_is_off_by_default(gosend_app, satusehat, body):
    app = gosend_app(services={"medicine_delivery": {"couriers": ["gosend_sandbox"]}})
    key = new_key(app, key_type="test")
    request_id = deliver(app, key, body)
    assert notes(app, key, request_id) == [] and pending_job(app, request_id) is None


def test_the_sender_settings_are_complete_when_enabled(make_app):
    from gateway.settings import ConfigError

    with pytest.raises(ConfigError) as error:
        make_app(services={"medicine_delivery": {"couriers": [],
                                                 "satusehat": {"enabled": True}}})
    assert "satusehat.client_secret" in str(error.value)
    assert "satusehat.base_url" in str(error.value)


def test_a_sandbox_cannot_point_at_the_real_satusehat(make_app):
    """Test keys are sent to a sandbox, so a sandbox on the production host would let them
    reach the real SATUSEHAT."""
    from gateway.settings import ConfigError

    real = "https://api-satusehat.kemkes.go.id"
    with pytest.raises(ConfigError) as error:
        make_app(services={"medicine_delivery": {"couriers": [], "satusehat": {
            "enabled": True, "auth_url": f"{real}/oauth2/v1", "base_url": f"{real}/fhir-r4/v1",
            **CLIENT}}})
    assert "satusehat.auth_url" in str(error.value)
    staging = "https://api-satusehat-stg.dto.kemkes.go.id"
    make_app(services={"medicine_delivery": {"couriers": [], "satusehat": {
        "enabled": True, "auth_url": f"{staging}/oauth2/v1", "base_url": f"{staging}/fhir-r4/v1",
        **CLIENT}}})
