"""Citizen notices end to end: a request accepted -> a notice at the WhatsApp simulator, its
receipts on the request's timeline, SMS when WhatsApp fails or stays silent (once, never
both), STOP, quiet hours, the agency's rate and the cost (``gateway.notices``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.models import Notice, ServiceRequest
from gateway.notices import (
    NoticeError,
    advance_notice,
    check_parameters,
    held_until,
    queue_notice,
    register_template,
    template_for,
)
from gateway.region import Region
from gateway.testing import drain
from tests.conftest import bearer, new_key
from tests.gateway.notifiers.conftest import everything_received, sms_sent, step, whatsapp_sent

PATIENT_DIGITS = "6281234567890"


def accept(app, body, key_type="test") -> tuple[str, str]:
    """A medicine request accepted for an agency with a ``key_type`` key; its notice's job
    run. :return: (key, request id)"""
    key = new_key(app, key_type=key_type)
    answer = app.test_client().post("/api/v1/services/medicine_delivery/requests", json=body,
                                    headers=bearer(key))
    assert answer.status_code == 202, answer.get_json()
    drain(app)
    return key, answer.get_json()["id"]


def notices(app, request_id) -> list[Notice]:
    with app.extensions["gateway"].db.read() as session:
        found = session.scalars(select(Notice).where(Notice.request_id == request_id)).all()
        for notice in found:
            list(notice.messages)
        return found


def timeline(app, key, request_id) -> list[str]:
    detail = app.test_client().get(f"/api/v1/requests/{request_id}",
                                   headers=bearer(key)).get_json()
    return [entry["raw_status"] for entry in detail["timeline"]
            if (entry["raw_status"] or "").startswith("notice_")]


def assert_no_medical_data(*sims, body) -> None:
    """Nothing a simulator received names a drug, the NIK or the address."""
    text = everything_received(*sims)
    patient = body["patient"]
    for secret in (body["items"][0]["name"], "Amlodipine", patient["nik"],
                   patient["address"], "Parman"):
        assert secret not in text


def test_an_accepted_medicine_request_reaches_the_patient_by_whatsapp_in_indonesian(
        notify_app, whatsapp_sim, sms_sim, medicine_body):
    app = notify_app()
    key, request_id = accept(app, medicine_body)

    [message] = whatsapp_sent(whatsapp_sim)
    assert message["to"] == PATIENT_DIGITS
    assert message["type"] == "template"
    assert message["template"]["name"] == "layanan_diterima_id"
    assert message["template"]["language"] == {"code": "id"}
    params = [p["text"] for p in message["template"]["components"][0]["parameters"]]
    assert params[:2] == ["Siti", "Pengantaran obat (Gancang Aron)"]
    assert "/t/" in params[2]      # the tracking link
    assert sms_sent(sms_sim) == []

    wamid = next(iter(whatsapp_sim.bookings))
    step(whatsapp_sim, wamid, "delivered")
    step(whatsapp_sim, wamid, "read")
    [notice] = notices(app, request_id)
    assert notice.status == "read"
    assert notice.channel == "whatsapp" and notice.provider_message_id == wamid
    assert timeline(app, key, request_id) == ["notice_queued", "notice_sent",
                                              "notice_delivered", "notice_read"]
    assert_no_medical_data(whatsapp_sim, sms_sim, body=medicine_body)


def test_each_message_records_its_cost_in_the_regions_currency(notify_app, medicine_body):
    app = notify_app(region={"currency": "IDR"})
    _key, request_id = accept(app, medicine_body)
    [notice] = notices(app, request_id)
    assert (notice.cost, notice.currency) == (350, "IDR")
    assert [m.cost for m in notice.messages] == [350]


def test_a_refused_whatsapp_message_goes_by_sms_once(notify_app, whatsapp_sim, sms_sim,
                                                    medicine_body):
    whatsapp_sim.faults.append("reject")       # the number is not on WhatsApp
    app = notify_app()
    key, request_id = accept(app, medicine_body)

    assert whatsapp_sent(whatsapp_sim) != [] and whatsapp_sim.bookings == {}
    [sms] = sms_sent(sms_sim)
    assert sms["To"] == "+" + PATIENT_DIGITS
    assert sms["Body"].startswith("Halo Siti, permintaan Pengantaran obat (Gancang Aron) Anda")
    sid = next(iter(sms_sim.bookings))
    step(sms_sim, sid, "sent")
    step(sms_sim, sid, "delivered")
    [notice] = notices(app, request_id)
    assert notice.status == "delivered" and notice.channel == "sms"
    assert [(m.channel, m.status) for m in notice.messages] == [("whatsapp", "fell_back"),
                                                                 ("sms", "delivered")]
    assert notice.cost == 400
    assert "notice_fell_back" in timeline(app, key, request_id)
    assert_no_medical_data(whatsapp_sim, sms_sim, body=medicine_body)


def test_a_failed_whatsapp_receipt_sends_the_notice_by_sms(notify_app, whatsapp_sim, sms_sim,
                                                          medicine_body):
    app = notify_app()
    key, request_id = accept(app, medicine_body)
    wamid = next(iter(whatsapp_sim.bookings))
    step(whatsapp_sim, wamid, "failed")
    drain(app)

    assert len(sms_sent(sms_sim)) == 1
    assert timeline(app, key, request_id) == [
        "notice_queued", "notice_sent", "notice_failed", "notice_fell_back", "notice_sent"]


def test_whatsapp_silent_past_the_deadline_goes_by_sms_and_its_late_receipt_sends_nothing(
        notify_app, whatsapp_sim, sms_sim, medicine_body):
    app = notify_app(notices={"fallback_after_seconds": 60, "quiet_hours": None})
    gateway = app.extensions["gateway"]
    key, request_id = accept(app, medicine_body)
    wamid = next(iter(whatsapp_sim.bookings))
    [notice] = notices(app, request_id)

    assert advance_notice(gateway, notice.id) == "waiting for a receipt"
    assert sms_sent(sms_sim) == []
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert advance_notice(gateway, notice.id, now=later) == "sent"
    assert len(sms_sent(sms_sim)) == 1

    step(whatsapp_sim, wamid, "delivered")      # WhatsApp delivers after all, too late
    drain(app)
    assert advance_notice(gateway, notice.id, now=later + timedelta(hours=1)) == \
        "waiting for a receipt"
    assert len(sms_sent(sms_sim)) == 1 and len(whatsapp_sent(whatsapp_sim)) == 1
    [notice] = notices(app, request_id)
    whatsapp, sms = notice.messages
    assert (whatsapp.status, whatsapp.late_status) == ("fell_back", "delivered")
    assert notice.status == "sent" and notice.channel == "sms"
    assert "notice_late_delivered" in timeline(app, key, request_id)

    sid = next(iter(sms_sim.bookings))
    step(sms_sim, sid, "delivered")
    assert notices(app, request_id)[0].status == "delivered"
    assert len(sms_sent(sms_sim)) == 1


def test_a_notice_delivered_by_whatsapp_never_goes_by_sms(notify_app, whatsapp_sim, sms_sim,
                                                         medicine_body):
    app = notify_app(notices={"fallback_after_seconds": 60, "quiet_hours": None})
    _key, request_id = accept(app, medicine_body)
    step(whatsapp_sim, next(iter(whatsapp_sim.bookings)), "delivered")
    [notice] = notices(app, request_id)
    later = datetime.now(UTC) + timedelta(hours=2)
    assert advance_notice(app.extensions["gateway"], notice.id, now=later) == "nothing owed"
    assert sms_sent(sms_sim) == []


def test_a_whatsapp_outage_is_retried_and_never_sent_twice(notify_app, whatsapp_sim, sms_sim,
                                                          medicine_body):
    whatsapp_sim.faults.append("429")           # Meta's throughput limit: nothing sent
    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    assert len(whatsapp_sim.bookings) == 1 and sms_sent(sms_sim) == []
    [notice] = notices(app, request_id)
    assert [m.channel for m in notice.messages] == ["whatsapp"]


def test_stop_opts_the_sender_out_and_only_the_sender(notify_app, whatsapp_sim, sms_sim,
                                                     medicine_body):
    app = notify_app()
    whatsapp_sim.send_inbound("6281399990000", "stop")        # someone else's number
    _key, first = accept(app, medicine_body)
    assert notices(app, first)[0].status == "sent"

    whatsapp_sim.send_inbound(PATIENT_DIGITS, " STOP ")
    _key, second = accept(app, medicine_body)
    assert notices(app, second)[0].status == "suppressed"
    assert len(whatsapp_sent(whatsapp_sim)) == 1 and sms_sent(sms_sim) == []

    whatsapp_sim.send_inbound(PATIENT_DIGITS, "MULAI")        # back in
    _key, third = accept(app, medicine_body)
    assert notices(app, third)[0].status == "sent"


def test_an_essential_notice_still_reaches_a_citizen_who_opted_out(notify_app, whatsapp_sim,
                                                                   medicine_body):
    app = notify_app()
    gateway = app.extensions["gateway"]
    whatsapp_sim.send_inbound(PATIENT_DIGITS, "STOP")
    _key, request_id = accept(app, medicine_body)
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        queue_notice(gateway, session, record, "pin", {"service": "Pengantaran obat",
                                                       "pin": "482913"},
                     to="0812-3456-7890", urgent=True)
    drain(app)
    [message] = whatsapp_sent(whatsapp_sim)
    assert message["template"]["name"] == "pin_serah_terima_id"


def test_a_notice_in_quiet_hours_is_held_until_the_morning(notify_app, whatsapp_sim,
                                                          medicine_body):
    app = notify_app(notices={"quiet_hours": {"start": "00:00", "end": "23:59"}})
    gateway = app.extensions["gateway"]
    _key, request_id = accept(app, medicine_body)
    [notice] = notices(app, request_id)
    assert notice.status == "held" and notice.not_before is not None
    assert whatsapp_sent(whatsapp_sim) == []
    assert advance_notice(gateway, notice.id,
                          now=notice.not_before + timedelta(seconds=1)) == "sent"
    assert len(whatsapp_sent(whatsapp_sim)) == 1


def test_quiet_hours_are_the_regions_local_night():
    wib = Region.from_settings({"time_zone": "Asia/Jakarta"})
    wit = Region.from_settings({"time_zone": "Asia/Jayapura"})
    quiet = {"start": "21:00", "end": "07:00"}
    # 15:00 UTC is 22:00 WIB (quiet until 07:00 WIB = 00:00 UTC) and 00:00 WIT the next day
    evening = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    assert held_until(wib, quiet, evening) == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    assert held_until(wit, quiet, evening) == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
    assert held_until(wib, quiet, datetime(2026, 12, 2, 5, 0, tzinfo=UTC)) is None  # 12:00
    assert held_until(wib, None, evening) is None


def test_an_agencys_notices_wait_their_turn_over_its_rate(notify_app, whatsapp_sim,
                                                         medicine_body):
    app = notify_app(notices={"rate_limit": {"rate": 0.01, "burst": 1}, "quiet_hours": None})
    key = new_key(app, key_type="test")
    client = app.test_client()
    for number in range(2):
        body = dict(medicine_body, prescription_id=f"RX-2026-00{number}")
        assert client.post("/api/v1/services/medicine_delivery/requests", json=body,
                           headers=bearer(key)).status_code == 202
    drain(app)
    assert len(whatsapp_sent(whatsapp_sim)) == 1
    with app.extensions["gateway"].db.read() as session:
        assert sorted(n.status for n in session.scalars(select(Notice))) == ["queued", "sent"]


def test_a_test_keys_notice_never_reaches_a_live_notifier(notify_app, whatsapp_sim, sms_sim,
                                                          medicine_body):
    live_sim_origin = whatsapp_sim.url
    app = notify_app(
        notifier_hosts=[live_sim_origin],
        notifiers={"whatsapp_sandbox": {"enabled": False},
                   "whatsapp_live": {"adapter": "whatsapp", "sandbox": False,
                                     "base_url": whatsapp_sim.url, "api_version": "v21.0",
                                     "phone_number_id": "106540352242922",
                                     "access_token": "wa-test-access-token",
                                     "app_secret": "wa-test-app-secret-000000",
                                     "verify_token": "wa-test-verify-token-00000"}},
        mode="live", secret_key="tH1s-is-a-test-only-key-AAAAAAAAAAAAAAAAAAA=")
    accept(app, medicine_body, key_type="test")
    assert whatsapp_sent(whatsapp_sim) == []
    assert len(sms_sent(sms_sim)) == 1          # the sandbox SMS took it
    accept(app, medicine_body, key_type="live")
    assert len(whatsapp_sent(whatsapp_sim)) == 1


def test_templates_cannot_ask_for_medical_or_identifying_data():
    for placeholder in ("drug", "diagnosis", "nik", "address", "items"):
        with pytest.raises(NoticeError):
            register_template("accepted", "id", "x", f"Obat Anda: {{{placeholder}}}")
    template = template_for("accepted", "id", "id")
    with pytest.raises(NoticeError):
        check_parameters(template, {"first_name": "3510011203650002", "service": "Obat"})
    with pytest.raises(NoticeError):
        check_parameters(template, {"first_name": "Siti", "service": "Obat",
                                    "address": "Jl. Parman"})
    assert template_for("accepted", "en", "id").text.startswith("Hello {first_name}")


def test_a_notice_whose_job_redis_lost_is_found_by_the_sweep(notify_app, whatsapp_sim,
                                                              gateway_redis, medicine_body):
    from gateway.sweep import sweep_once

    app = notify_app(sweep={"stale_after_seconds": 1})
    key = new_key(app, key_type="test")
    assert app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                  json=medicine_body, headers=bearer(key)).status_code == 202
    gateway_redis.flushdb()                  # Redis restarted without its data
    drain(app)
    assert whatsapp_sent(whatsapp_sim) == []
    with app.extensions["gateway"].db.write() as session:
        for notice in session.scalars(select(Notice)):
            notice.updated_at -= timedelta(seconds=5)
            session.get(ServiceRequest, notice.request_id).pending_job = None
    assert sweep_once(app.extensions["gateway"]) >= 1
    drain(app)
    drain(app)
    assert len(whatsapp_sent(whatsapp_sim)) == 1


def test_the_consoles_request_view_shows_each_notice_step_once(notify_app, whatsapp_sim,
                                                               medicine_body):
    from gateway.console.users import create_admin
    from gateway.testing import ConsoleClient

    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    step(whatsapp_sim, next(iter(whatsapp_sim.bookings)), "delivered")
    create_admin(app.extensions["gateway"], "notice-admin", "notice-admin-password-0",
                 "admin", language="en")
    console = ConsoleClient.sign_in(app, "notice-admin", "notice-admin-password-0")
    page = console.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert page.count("accepted notice sent by WhatsApp") == 1
    assert page.count("accepted notice delivered by WhatsApp") == 1
    assert "notice.sent" not in page                 # not again as an audit record


def test_a_whatsapp_send_whose_answer_was_lost_is_found_by_its_receipt_not_sent_again(
        notify_app, whatsapp_sim, sms_sim, medicine_body):
    """WhatsApp took the message but its answer timed out: never sent again on WhatsApp,
    not yet by SMS; its receipt (echoing our reference) settles it, and then no SMS ever."""
    whatsapp_sim.faults.append("timeout")
    app = notify_app(notices={"fallback_after_seconds": 60, "quiet_hours": None})
    _key, request_id = accept(app, medicine_body)
    [notice] = notices(app, request_id)
    assert (notice.status, notice.messages[0].provider_message_id) == ("sending", None)
    assert len(whatsapp_sent(whatsapp_sim)) == 1 and sms_sent(sms_sim) == []

    wamid = next(iter(whatsapp_sim.bookings))
    step(whatsapp_sim, wamid, "delivered")
    [notice] = notices(app, request_id)
    assert notice.status == "delivered" and notice.messages[0].provider_message_id == wamid
    later = datetime.now(UTC) + timedelta(hours=1)
    assert advance_notice(app.extensions["gateway"], notice.id, now=later) == "nothing owed"
    assert sms_sent(sms_sim) == [] and len(whatsapp_sent(whatsapp_sim)) == 1


def test_a_notices_personal_data_is_sealed_everywhere_but_at_the_provider(
        notify_app, whatsapp_sim, sms_sim, gateway_redis, medicine_body, caplog):
    """The number, the name and the rest of the request are nowhere in clear (database rows
    read raw, Redis, the logs) after a notice went by WhatsApp, failed, and went by SMS."""
    import logging

    from tests.reliability.test_personal_data import _database_text, _redis_text

    caplog.set_level(logging.DEBUG)
    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    step(whatsapp_sim, next(iter(whatsapp_sim.bookings)), "failed")
    drain(app)
    step(sms_sim, next(iter(sms_sim.bookings)), "delivered")
    assert notices(app, request_id)[0].status == "delivered"

    patient = medicine_body["patient"]
    secrets = {"phone": patient["phone"][-10:], "name": patient["name"], "nik": patient["nik"],
               "address": patient["address"], "medicine": medicine_body["items"][0]["name"]}
    stored = _database_text(app.extensions["gateway"])
    queued = _redis_text(gateway_redis)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "notice_delivered" in stored
    for what, value in secrets.items():
        assert value not in stored, f"the {what} is stored in clear"
        assert value not in queued, f"the {what} is in Redis"
        assert value not in logged, f"the {what} is in the logs"
    assert_no_medical_data(whatsapp_sim, sms_sim, body=medicine_body)


def test_a_whatsapp_outage_sends_the_notice_by_sms_once_the_retries_are_spent(
        notify_app, whatsapp_sim, sms_sim, medicine_body):
    whatsapp_sim.start_outage("429", 60)     # Meta's throughput limit: nothing is taken
    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    assert whatsapp_sim.bookings == {} and len(whatsapp_sent(whatsapp_sim)) == 3  # 1 + 2 retries
    assert len(sms_sent(sms_sim)) == 1
    [notice] = notices(app, request_id)
    assert [(m.channel, m.status, m.error) for m in notice.messages] == [
        ("whatsapp", "fell_back", "temporary"), ("sms", "sent", None)]


def test_the_retention_purge_takes_a_notices_number_and_parameters(notify_app, whatsapp_sim,
                                                                   medicine_body):
    from gateway.purge import purge_expired

    app = notify_app()
    gateway = app.extensions["gateway"]
    _key, request_id = accept(app, medicine_body)
    with gateway.db.write() as session:
        session.get(ServiceRequest, request_id).status = "delivered"
    assert purge_expired(gateway, now=datetime.now(UTC) + timedelta(days=400)) == 1
    [notice] = notices(app, request_id)
    assert gateway.vault.open(notice.to_ciphertext) == ""
    assert gateway.vault.open(notice.params_ciphertext) == {}
    assert notice.phone_digest == "" and notice.status == "sent"      # the history stays
