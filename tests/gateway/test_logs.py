"""Structured logs: with ``log_format: json`` every line is one JSON object, and one request's
lines, from the API, its jobs, its provider calls and its callbacks, carry the correlation id
the agency sent."""

from __future__ import annotations

import io
import json
import logging

from gateway.agencies import create_agency
from gateway.logs import configure_logging
from gateway.testing import wait_for_status
from tests.conftest import bearer

CORRELATION = "pharmacy-req-000042"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_requests_lines_from_the_api_its_jobs_and_the_provider_share_its_correlation_id(
        gosend_app, medicine_body, callback_receiver, capsys):
    app = gosend_app(log_format="json")
    gateway = app.extensions["gateway"]
    _agency, key = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"],
                                 callback_receiver.url, actor="test", key_type="test")
    capsys.readouterr()  # only what follows

    created = app.test_client().post(
        "/api/v1/services/medicine_delivery/requests", json=medicine_body,
        headers={**bearer(key), "X-Correlation-ID": CORRELATION})
    assert created.status_code == 202, created.get_json()
    request_id = created.get_json()["id"]
    wait_for_status(app, request_id, "delivered")

    # The app's own handler writes to standard error: every line there is one JSON object.
    entries = json_lines(capsys.readouterr().err)
    assert all({"timestamp", "level", "logger", "message"} <= set(e) for e in entries)
    mine = [e for e in entries if e.get("correlation_id") == CORRELATION]

    api = [e for e in mine if e["logger"] == "gateway.http"]
    assert [(e["method"], e["route"], e["status"]) for e in api] == [
        ("POST", "/api/v1/services/<service_name>/requests", 202)]

    # a request's first booking is a batch's (gateway.batch), its later work its own jobs'
    jobs = {(e["job_kind"], e["outcome"]) for e in mine
            if e["logger"] in ("gateway.jobs", "gateway.batch")}
    assert ("dispatch", "booked") in jobs
    assert ("event", "applied") in jobs
    assert ("callback", "delivered") in jobs
    assert all(e["request_id"] == request_id for e in mine if e["logger"] == "gateway.jobs")

    calls = [e for e in mine if e["logger"] == "gateway.couriers"]
    assert {(e["courier"], e["operation"], e["outcome"]) for e in calls} >= {
        ("gosend_sandbox", "book", "ok")}
    # booking calls come from its dispatch; a status query for the courier's plate (GO-SEND's
    # webhooks leave it out) from the plates job (``gateway.plates``): all the request's own
    assert all(e["request_id"] == request_id for e in calls)
    assert all(e["job_kind"] == "dispatch" for e in calls if e["operation"] in ("quote", "book"))
    assert all(e["job_kind"] in ("poll", "plate") for e in calls
               if e["operation"] == "status")

    # The agency's own id comes back on every status callback, beside the signature.
    assert callback_receiver.received
    assert {{k.lower(): v for k, v in call.headers.items()}.get("x-correlation-id")
            for call in callback_receiver.received} == {CORRELATION}

    # Another request's lines carry another id; the provider's webhooks have their own.
    webhooks = [e for e in entries if e.get("route") == "/webhooks/<courier>"]
    assert webhooks and all(e["correlation_id"] != CORRELATION for e in webhooks)

    logged = "\n".join(json.dumps(e) for e in entries)
    for personal in ("3510011203650002", "Siti Aminah", "Amlodipine", "6281234567890",
                     key):
        assert personal not in logged


def test_text_lines_name_the_unit_of_work_too(make_app):
    app = make_app()
    stream = io.StringIO()
    configure_logging(app.extensions["gateway"].settings, stream=stream)
    app.test_client().get("/api/v1/services", headers={"X-Correlation-ID": CORRELATION})
    line = stream.getvalue().strip()
    assert f"INFO gateway.http correlation_id={CORRELATION}: GET /api/v1/services 401" in line


def test_configuring_again_replaces_the_handler_instead_of_doubling_lines(make_app):
    make_app(log_format="json")
    app = make_app(log_format="json")
    stream = io.StringIO()
    configure_logging(app.extensions["gateway"].settings, stream=stream)
    logging.getLogger("gateway.test").warning("once")
    assert [e["message"] for e in json_lines(stream.getvalue())] == ["once"]
