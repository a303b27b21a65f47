"""Webhooks under attack: forged, oversized, deeply nested, badly encoded and awkward bodies.

``POST /webhooks/<courier>`` answers anyone. What a stranger can make it do must stay cheap:
a forged post writes nothing to the database (a metric and a rate-limited log line count it),
a source that keeps sending them is slowed down (429), and bodies no provider sends are
refused before they are parsed. A genuine signed report is never answered 500 and never lost,
even when its values do not fit the inbox's columns (PostgreSQL text holds no NUL byte).
"""

from __future__ import annotations

import json
import logging

import pytest
import requests
from sqlalchemy import func, select

from gateway.models import AuditRecord, ProviderEventRecord
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, detail
from tests.gateway.test_invariants import assert_error_shape
from tests.gateway.test_metrics import samples

URL = "/webhooks/gosend_sandbox"
TOKEN = {"X-Callback-Token": GOSEND_TEST_CREDENTIALS["webhook_token"]}
FORGED = {"X-Callback-Token": "not-the-token-we-registered"}
CREATE = "/api/v1/services/medicine_delivery/requests"


@pytest.fixture
def webhook_app(make_app):
    """An app whose GO-SEND entry takes webhooks (its provider is never called here)."""
    return make_app(couriers={"gosend_sandbox": {"base_url": "http://127.0.0.1:9",
                                                 **GOSEND_TEST_CREDENTIALS}})


def rows(gateway, model) -> int:
    with gateway.db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def rejected(client, courier="gosend_sandbox") -> dict[str, float]:
    """``gateway_webhooks_rejected_total`` of one courier, by reason, as ``/metrics`` shows it."""
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    return {dict(labels)["reason"]: value for (name, labels), value in scraped.items()
            if name == "gateway_webhooks_rejected_total"
            and dict(labels)["courier"] == courier}


def from_address(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def report(event_id="evt-1", entity_id="GK-1", status="picked", **more) -> dict:
    return {"entity_id": entity_id, "status": status, "event_id": event_id,
            "event_date": 1700000000000, **more}


# -- forged posts ------------------------------------------------------------------------------
def test_two_hundred_forged_posts_write_no_audit_record_and_are_counted(webhook_app, caplog):
    gateway = webhook_app.extensions["gateway"]
    client = webhook_app.test_client()
    audit_before = rows(gateway, AuditRecord)

    with caplog.at_level(logging.WARNING, logger="gateway"):
        answers = [client.post(URL, json=report(event_id=f"forged-{n}"), headers=FORGED,
                               **from_address("203.0.113.7")) for n in range(200)]

    assert {a.status_code for a in answers} <= {401, 429}
    for answer in answers:
        assert_error_shape(answer)
    assert rows(gateway, AuditRecord) == audit_before
    assert rows(gateway, ProviderEventRecord) == 0
    counted = rejected(client)
    assert sum(counted.values()) == 200, counted
    assert counted["unverified"] == sum(a.status_code == 401 for a in answers)
    # the log says it, a few lines, not one per post
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(refusals) <= 3, [r.getMessage() for r in refusals]


def test_a_source_that_keeps_forging_is_told_to_wait_and_genuine_reports_are_not(webhook_app):
    client = webhook_app.test_client()
    limit = webhook_app.extensions["gateway"].settings["webhooks"]["max_rejections_per_source"]
    for n in range(limit):
        answer = client.post(URL, json=report(event_id=f"f-{n}"), headers=FORGED,
                             **from_address("198.51.100.20"))
        assert answer.status_code == 401
    slowed = client.post(URL, json=report(event_id="f-last"), headers=FORGED,
                         **from_address("198.51.100.20"))
    assert_error_shape(slowed, 429)
    assert slowed.get_json()["code"] == "rate_limited"
    assert 1 <= int(slowed.headers["Retry-After"]) <= 60
    # the provider is not held up by someone else's forgeries, from elsewhere or from the
    # same address (a NAT, or a proxy not trusted to name the client)
    for n, address in enumerate(("192.0.2.10", "198.51.100.20")):
        genuine = client.post(URL, json=report(event_id=f"real-{n}"), headers=TOKEN,
                              **from_address(address))
        assert genuine.status_code == 200 and genuine.get_json()["received"] == 1
    assert rejected(client) == {"unverified": limit, "rate_limited": 1}


# -- bodies no provider sends --------------------------------------------------------------------
def nested(depth: int) -> bytes:
    return json.dumps(report(event_id=f"deep-{depth}"))[:-1].encode() + \
        b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(("body", "status", "code"), [
    pytest.param(json.dumps(report(event_id="big", padding="x" * 100_000)).encode(), 413,
                 "payload_too_large", id="100 kB (under the API's limit)"),
    pytest.param(nested(200), 400, "body_too_deep", id="200 levels deep"),
    pytest.param(nested(30_000), 400, "body_too_deep", id="30,000 levels deep"),
    pytest.param(json.dumps(report(event_id="latin1")).encode()[:-1] + b', "note": "caf\xe9"}',
                 400, "invalid_body_encoding", id="not UTF-8"),
])
def test_bodies_no_provider_sends_are_refused_before_parsing(webhook_app, body, status, code):
    gateway = webhook_app.extensions["gateway"]
    client = webhook_app.test_client()
    audit_before = rows(gateway, AuditRecord)
    answer = client.post(URL, data=body, headers={**TOKEN, "Content-Type": "application/json"})
    assert_error_shape(answer, status)
    assert answer.get_json()["code"] == code
    assert rows(gateway, ProviderEventRecord) == 0
    assert rows(gateway, AuditRecord) == audit_before
    assert sum(rejected(client).values()) == 1


def test_a_streamed_body_without_a_length_is_cut_at_the_limit(make_app, serve_app):
    app = serve_app(make_app(couriers={"gosend_sandbox": {"base_url": "http://127.0.0.1:9",
                                                           **GOSEND_TEST_CREDENTIALS}}))
    limit = app.extensions["gateway"].settings["webhooks"]["max_body_bytes"]

    def chunks():  # chunked transfer encoding: no Content-Length to refuse it by
        yield json.dumps(report(event_id="streamed"))[:-1].encode() + b', "padding": "'
        for _ in range(limit // 1000 + 1):
            yield b"x" * 1000
        yield b'"}'

    answer = requests.post(f"{app.server_url}{URL}", data=chunks(), timeout=10,
                           headers={**TOKEN, "Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"
    assert rows(app.extensions["gateway"], ProviderEventRecord) == 0


# -- genuine reports with awkward values -----------------------------------------------------------
def booked_request(app, gateway_gosend, medicine_body) -> tuple[str, str, str]:
    """A request booked at the GO-SEND simulator, whose driver never moves: (key, id, order)."""
    key = new_key(app, key_type="test")
    answer = app.test_client().post(CREATE, json={**medicine_body,
                                                  "notes_for_courier": "[sim:stall]"},
                                    headers=bearer(key))
    assert answer.status_code == 202, answer.get_json()
    request_id = answer.get_json()["id"]
    wait_for_status(app, request_id, "booked")
    return key, request_id, bookings(gateway_gosend)[0]["orderNo"]


def test_a_signed_report_with_a_nul_byte_is_applied_not_refused(gosend_app, gateway_gosend,
                                                                  medicine_body):
    app = gosend_app()
    key, request_id, order_no = booked_request(app, gateway_gosend, medicine_body)
    body = report(event_id="evt\u0000picked", entity_id=order_no, status="picked",
                  receiver_name="Siti\u0000Aminah")
    answer = app.test_client().post(URL, json=body, headers=TOKEN)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"received": 1, "duplicates": 0}
    again = app.test_client().post(URL, json=body, headers=TOKEN)   # the provider retries
    assert again.get_json() == {"received": 0, "duplicates": 1}
    drain(app)
    assert detail(app, key, request_id)["status"] == "picked_up"


def test_a_signed_report_with_a_10000_character_value_is_kept_whole(gosend_app, gateway_gosend,
                                                                     medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    key, request_id, order_no = booked_request(app, gateway_gosend, medicine_body)
    long_status = "picked-" + "x" * 10_000
    answer = app.test_client().post(URL, json=report(event_id="evt-long", entity_id=order_no,
                                                     status=long_status), headers=TOKEN)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["received"] == 1
    with gateway.db.read() as session:
        row = session.scalars(select(ProviderEventRecord).where(
            ProviderEventRecord.event_key == "evt-long")).one()
    assert len(row.raw_status) <= 64 and row.raw_status.startswith("picked-x")
    # nothing of the report is lost: what did not fit is kept, sealed, beside it
    assert gateway.vault.open(row.details_ciphertext)["unfitted"]["raw_status"] == long_status
    drain(app)
    body = detail(app, key, request_id)
    assert body["status"] == "booked"     # an unknown status changes nothing


@pytest.mark.parametrize(("field", "value"), [
    ("event_id", "evt-\ud800-lone-surrogate"),        # valid JSON, not encodable as UTF-8
    ("store_order_id", 12345),                       # a number where text was expected
    ("store_order_id", {"nested": ["object"]}),
    ("entity_id", "GK-" + "9" * 200),                 # over provider_reference's 128
])
def test_a_signed_report_with_values_of_the_wrong_shape_is_stored_once(webhook_app, field,
                                                                      value):
    gateway = webhook_app.extensions["gateway"]
    client = webhook_app.test_client()
    body = json.dumps({**report(event_id="evt-shape"), field: value}).encode()
    first = client.post(URL, data=body, headers={**TOKEN, "Content-Type": "application/json"})
    again = client.post(URL, data=body, headers={**TOKEN, "Content-Type": "application/json"})
    assert first.status_code == 200, first.get_json()
    assert (first.get_json(), again.get_json()) == ({"received": 1, "duplicates": 0},
                                                    {"received": 0, "duplicates": 1})
    with gateway.db.read() as session:
        row = session.scalars(select(ProviderEventRecord)).one()
    assert gateway.vault.open(row.details_ciphertext)["unfitted"]
