"""Intake, called directly as the console form and the spreadsheet upload call it: the same
validation, field paths, idempotency and refusals the API answers with, without HTTP."""

from __future__ import annotations

import pytest
from flask import request
from sqlalchemy import func, select

from gateway import intake
from gateway.batch import READY_KEY
from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.intake import NewRequest
from gateway.models import AuditRecord, ServiceRequest
from tests.conftest import bearer

CREATE = "/api/v1/services/medicine_delivery/requests"


@pytest.fixture
def actor(app, gateway, agency):
    """The agency as authentication describes it (the real hook, on a made-up request)."""
    with app.test_request_context(headers=bearer(agency.key)):
        return gateway.pm.hook.actor_from_request(gateway=gateway, request=request)


def new(actor, body, **kw) -> NewRequest:
    return NewRequest(actor=actor, service=kw.pop("service", "medicine_delivery"), body=body,
                      correlation_id="corr-intake-test", **kw)


def stored(gateway) -> int:
    with gateway.db.read() as session:
        return session.scalar(select(func.count()).select_from(ServiceRequest))


def test_a_valid_request_is_stored_audited_and_owed_its_dispatch(
        gateway, actor, medicine_body, gateway_redis):
    accepted = intake.submit(gateway, new(actor, medicine_body))
    assert not accepted.replayed
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, accepted.record.id)
        assert (record.status, record.pending_job) == ("received", "dispatch")
        assert record.correlation_id == "corr-intake-test"
        assert record.external_reference == "RX-2026-000123"
        assert gateway.vault.open(record.payload_ciphertext)["patient"]["nik"] == \
            "3510011203650002"
        assert session.scalars(select(AuditRecord.target).where(
            AuditRecord.action == "request.create")).all() == [f"request:{record.id}"]
    assert gateway_redis.lrange(READY_KEY, 0, -1) == [accepted.record.id.encode()]


def test_invalid_fields_are_named_with_the_paths_the_api_answers_with(
        gateway, actor, agency, medicine_body):
    medicine_body["patient"]["nik"] = "35100112"
    medicine_body["items"][0]["quantity"] = 0
    medicine_body["unexpected"] = True
    with pytest.raises(Invalid) as refused:
        intake.submit(gateway, new(actor, medicine_body))
    assert refused.value.code == "validation_failed"
    assert set(refused.value.fields) == {"patient.nik", "items.0.quantity", "unexpected"}
    answered = agency.post(CREATE, json=medicine_body).get_json()
    assert (answered["code"], answered["fields"]) == (refused.value.code, refused.value.fields)
    assert stored(gateway) == 0


def test_a_body_that_is_not_an_object_is_invalid_as_a_whole(gateway, actor):
    with pytest.raises(Invalid) as refused:
        intake.submit(gateway, new(actor, [1, 2]))
    assert refused.value.fields == {"_body": ["The body must be a JSON object."]}


def test_a_service_rule_refuses_with_its_own_code_and_field(gateway, actor, medicine_body):
    medicine_body["pharmacist_counselled"] = False
    with pytest.raises(Invalid) as refused:
        intake.submit(gateway, new(actor, medicine_body))
    assert refused.value.code == "counselling_required"
    assert set(refused.value.fields) == {"pharmacist_counselled"}
    assert stored(gateway) == 0


def test_unknown_and_unallowed_services_are_refused(
        gateway, gateway_make_agency, app, medicine_body):
    pharmacy = gateway_make_agency(services=("umkm_pickup",), key_type="live")
    with app.test_request_context(headers=bearer(pharmacy.key)):
        umkm_only = gateway.pm.hook.actor_from_request(gateway=gateway, request=request)
    with pytest.raises(NotFound) as missing:
        intake.submit(gateway, new(umkm_only, medicine_body, service="no_such_service"))
    assert missing.value.code == "service_not_found"
    with pytest.raises(Forbidden) as forbidden:
        intake.submit(gateway, new(umkm_only, medicine_body))
    assert forbidden.value.code == "service_not_allowed"


def test_the_same_idempotency_key_and_body_replays_the_request(gateway, actor, medicine_body,
                                                                gateway_redis):
    first = intake.submit(gateway, new(actor, medicine_body, idempotency_key="row-17"))
    again = intake.submit(gateway, new(actor, medicine_body, idempotency_key="row-17"))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.record.id == first.record.id
    assert stored(gateway) == 1
    assert gateway_redis.lrange(READY_KEY, 0, -1) == [first.record.id.encode()]  # queued once


def test_the_same_idempotency_key_with_another_body_is_a_conflict(gateway, actor,
                                                                  medicine_body):
    intake.submit(gateway, new(actor, medicine_body, idempotency_key="row-17"))
    medicine_body["items"][0]["quantity"] = 60
    with pytest.raises(Conflict) as clash:
        intake.submit(gateway, new(actor, medicine_body, idempotency_key="row-17"))
    assert clash.value.code == "idempotency_key_reused"
    assert stored(gateway) == 1


def test_an_idempotency_key_that_is_not_visible_ascii_is_invalid(gateway, actor,
                                                                 medicine_body):
    with pytest.raises(Invalid) as refused:
        intake.submit(gateway, new(actor, medicine_body, idempotency_key="baris 17"))
    assert set(refused.value.fields) == {"Idempotency-Key"}


def test_a_second_active_request_for_one_reference_is_a_conflict_naming_the_field(
        gateway, actor, medicine_body):
    intake.submit(gateway, new(actor, medicine_body))
    with pytest.raises(Conflict) as clash:
        intake.submit(gateway, new(actor, medicine_body))
    assert clash.value.code == "duplicate_reference"
    assert set(clash.value.fields) == {"prescription_id"}
    assert stored(gateway) == 1


def test_check_validates_like_submit_and_stores_nothing(gateway, actor, medicine_body):
    assert intake.check(gateway, new(actor, medicine_body))["prescription_id"] == \
        "RX-2026-000123"
    medicine_body["items"][0]["quantity"] = 0
    with pytest.raises(Invalid) as checked:
        intake.check(gateway, new(actor, medicine_body))
    with pytest.raises(Invalid) as submitted:
        intake.submit(gateway, new(actor, medicine_body))
    assert (checked.value.code, checked.value.fields) == \
        (submitted.value.code, submitted.value.fields)
    assert stored(gateway) == 0
