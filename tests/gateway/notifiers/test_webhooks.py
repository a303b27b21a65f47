"""The notifiers' webhooks as an attacker meets them: ``/webhooks/notifiers/<name>``.

A forged receipt, a replayed one, a receipt for another notifier's message, an oversized
body, a STOP that is not signed: each is refused (401, 413) or changes nothing; the
WhatsApp handshake answers its challenge only for our verify token."""

from __future__ import annotations

import json

from sqlalchemy import select

from gateway.models import NoticeOptOut
from gateway.notifiers.sms import mapping as sms_mapping
from gateway.notifiers.whatsapp import mapping as wa_mapping
from tests.gateway.notifiers.conftest import SMS, WA, sms_sent, step
from tests.gateway.notifiers.test_notices import accept, notices, timeline

WA_PATH = "/webhooks/notifiers/whatsapp_sandbox"
SMS_PATH = "/webhooks/notifiers/sms_sandbox"


def signed(body: dict, secret: str = WA["app_secret"]) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json",
                 "X-Hub-Signature-256": wa_mapping.signature(raw, secret)}


def receipt(message_id: str, status: str, phone_number_id: str = WA["phone_number_id"]):
    return wa_mapping.status_notification(phone_number_id, message_id, status,
                                          "6281234567890", 1764700000)


def test_the_handshake_answers_the_challenge_only_for_our_verify_token(notify_app):
    client = notify_app().test_client()
    answer = client.get(WA_PATH, query_string={"hub.mode": "subscribe",
                                               "hub.verify_token": WA["verify_token"],
                                               "hub.challenge": "1158201444"})
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain" and answer.get_data(as_text=True) == "1158201444"
    for args in ({"hub.mode": "subscribe", "hub.verify_token": "guess-guess-guess-guess",
                  "hub.challenge": "1"},
                 {"hub.verify_token": WA["verify_token"], "hub.challenge": "1"},
                 {"hub.mode": "subscribe", "hub.verify_token": WA["verify_token"],
                  "hub.challenge": "<script>alert(1)</script>"}):
        refused = client.get(WA_PATH, query_string=args)
        assert refused.status_code == 403
        assert refused.get_json()["code"] == "forbidden"
    # the SMS gateway has no handshake; an unknown notifier is not found
    assert client.get(SMS_PATH, query_string={"hub.mode": "subscribe"}).status_code == 403
    assert client.get("/webhooks/notifiers/nope").status_code == 404


def test_a_forged_receipt_is_refused_and_changes_nothing(notify_app, whatsapp_sim,
                                                        medicine_body):
    app = notify_app()
    key, request_id = accept(app, medicine_body)
    wamid = next(iter(whatsapp_sim.bookings))
    before = timeline(app, key, request_id)
    client = app.test_client()
    raw, headers = signed(receipt(wamid, "delivered"), secret="not-the-app-secret-000000")
    for attempt in (headers, {"Content-Type": "application/json"}):
        answer = client.post(WA_PATH, data=raw, headers=attempt)
        assert answer.status_code == 401
        assert answer.get_json()["code"] == "webhook_rejected"
    # a signature over another body does not cover this one
    _raw, genuine = signed(receipt(wamid, "sent"))
    assert client.post(WA_PATH, data=raw, headers=genuine).status_code == 401
    assert notices(app, request_id)[0].status == "sent"
    assert timeline(app, key, request_id) == before


def test_a_replayed_receipt_changes_nothing_the_second_time(notify_app, whatsapp_sim,
                                                           medicine_body):
    app = notify_app()
    key, request_id = accept(app, medicine_body)
    wamid = next(iter(whatsapp_sim.bookings))
    raw, headers = signed(receipt(wamid, "delivered"))
    client = app.test_client()
    first = client.post(WA_PATH, data=raw, headers=headers).get_json()
    second = client.post(WA_PATH, data=raw, headers=headers).get_json()
    assert (first["applied"], second["applied"], second["ignored"]) == (1, 0, 1)
    # an older status after a newer one moves nothing back
    raw, headers = signed(receipt(wamid, "sent"))
    assert client.post(WA_PATH, data=raw, headers=headers).get_json()["applied"] == 0
    assert timeline(app, key, request_id).count("notice_delivered") == 1
    assert notices(app, request_id)[0].status == "delivered"


def test_a_receipt_for_another_notifiers_message_is_ignored(notify_app, whatsapp_sim,
                                                           sms_sim, medicine_body):
    whatsapp_sim.faults.append("reject")
    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    sid = next(iter(sms_sim.bookings))
    client = app.test_client()
    # WhatsApp's genuine signature, naming the SMS message's id
    raw, headers = signed(receipt(sid, "failed"))
    assert client.post(WA_PATH, data=raw, headers=headers).get_json()["ignored"] == 1
    # the SMS gateway's genuine signature, for another account
    form = sms_mapping.status_callback_form("AC" + "9" * 32, sid, "undelivered", "X", "+62")
    pairs = sorted(form.items())
    url = f"{app.server_url}{SMS_PATH}"
    answer = client.post(SMS_PATH, data=dict(pairs), headers={
        "X-Twilio-Signature": sms_mapping.signature(url, pairs, SMS["auth_token"])})
    assert answer.status_code == 401
    [notice] = notices(app, request_id)
    assert notice.status == "sent" and notice.messages[-1].status == "sent"
    assert len(sms_sent(sms_sim)) == 1


def test_a_receipt_about_another_whatsapp_number_is_ignored(notify_app, whatsapp_sim,
                                                           medicine_body):
    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    wamid = next(iter(whatsapp_sim.bookings))
    raw, headers = signed(receipt(wamid, "failed", phone_number_id="999999999999"))
    answer = app.test_client().post(WA_PATH, data=raw, headers=headers).get_json()
    assert answer == {"applied": 0, "ignored": 0, "late": 0, "replies": 0}
    assert notices(app, request_id)[0].messages[-1].status == "sent"


def test_an_sms_receipt_signed_for_another_url_is_refused(notify_app, whatsapp_sim, sms_sim,
                                                         medicine_body):
    """The SMS gateway signs the URL it calls: the gateway checks the URL it registered, not
    the one a request claims with its Host header."""
    whatsapp_sim.faults.append("reject")
    app = notify_app()
    _key, request_id = accept(app, medicine_body)
    sid = next(iter(sms_sim.bookings))
    form = sorted(sms_mapping.status_callback_form(SMS["account_sid"], sid, "delivered",
                                                   "BWI", "+6281234567890").items())
    forged_url = f"http://evil.example{SMS_PATH}"
    answer = app.test_client().post(SMS_PATH, data=dict(form), headers={
        "Host": "evil.example",
        "X-Twilio-Signature": sms_mapping.signature(forged_url, form, SMS["auth_token"])})
    assert answer.status_code == 401
    assert notices(app, request_id)[0].status == "sent"
    step(sms_sim, sid, "delivered")          # the genuine one, signed by the simulator
    assert notices(app, request_id)[0].status == "delivered"


def test_an_oversized_receipt_is_refused_before_it_is_read(notify_app):
    app = notify_app(webhooks={"max_body_bytes": 2048})
    body = receipt("wamid.X", "delivered")
    body["padding"] = "x" * 4096
    raw, headers = signed(body)
    answer = app.test_client().post(WA_PATH, data=raw, headers=headers)
    assert answer.status_code == 413
    assert answer.get_json()["code"] == "payload_too_large"


def test_an_unsigned_stop_opts_no_one_out(notify_app, whatsapp_sim, medicine_body):
    app = notify_app()
    body = wa_mapping.inbound_notification(WA["phone_number_id"], "6281234567890", "STOP",
                                           "wamid.IN1", 1764700000)
    raw, headers = signed(body, secret="not-the-app-secret-000000")
    assert app.test_client().post(WA_PATH, data=raw, headers=headers).status_code == 401
    with app.extensions["gateway"].db.read() as session:
        assert session.scalars(select(NoticeOptOut)).all() == []
    _key, request_id = accept(app, medicine_body)
    assert notices(app, request_id)[0].status == "sent"

