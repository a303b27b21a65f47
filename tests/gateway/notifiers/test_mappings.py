"""The notifiers' pure mappings against their providers' documentation (sources in each
``mapping.py``), and the adapter contract's invariants."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from gateway.notifiers import RECEIPT_RANKS
from gateway.notifiers.sms import mapping as sms
from gateway.notifiers.sms.adapter import SmsNotifier
from gateway.notifiers.whatsapp import mapping as wa
from gateway.notifiers.whatsapp.adapter import WhatsAppNotifier


def test_the_sms_signature_is_twilios_documented_example():
    """The example of Twilio's webhook security page, reproduced by its own SDKs' tests
    (twilio-php RequestValidatorTest, twilio-csharp RequestValidatorTest)."""
    pairs = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
             ("From", "+14158675309"), ("To", "+18005551212")]
    assert sms.signature("https://mycompany.com/myapp.php?foo=1&bar=2", pairs, "12345") == \
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_a_whatsapp_template_message_is_metas_documented_shape():
    payload = wa.template_payload("+6281234567890", "obat_dikirim", "id", ("Budi",))
    assert payload == {
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "6281234567890", "type": "template",
        "template": {"name": "obat_dikirim", "language": {"code": "id"},
                     "components": [{"type": "body",
                                     "parameters": [{"type": "text", "text": "Budi"}]}]}}


def test_the_whatsapp_signature_is_an_hmac_sha256_of_the_raw_body():
    """``sha256=`` and the hex HMAC-SHA256 of the bytes as sent, under the app secret."""
    raw = b'{"object":"whatsapp_business_account"}'
    assert wa.signature(raw, "secret") == "sha256=" + hmac.new(
        b"secret", raw, hashlib.sha256).hexdigest()
    assert wa.signature(raw + b" ", "secret") != wa.signature(raw, "secret")


def test_a_whatsapp_status_webhook_reads_metas_example():
    body = wa.status_notification("123", "wamid.HBgL", "failed", "6281234567890", 1764700000)
    content = wa.parse_webhook(json.dumps(body).encode(), "123")
    [receipt] = content.receipts
    assert (receipt.provider_message_id, receipt.status, receipt.error) == \
        ("wamid.HBgL", "failed", "131026")
    assert wa.parse_webhook(json.dumps(body).encode(), "456").receipts == []
    with pytest.raises(ValueError):
        wa.parse_webhook(b'{"object": "page"}', "123")


def test_an_inbound_stop_is_read_with_the_senders_number():
    body = wa.inbound_notification("123", "6281234567890", "STOP", "wamid.IN", 1764700000)
    [message] = wa.parse_webhook(json.dumps(body).encode(), "123").inbound
    assert (message.sender, message.text) == ("+6281234567890", "STOP")


@pytest.mark.parametrize("notifier", [WhatsAppNotifier, SmsNotifier])
def test_every_provider_status_is_mapped_to_a_ranked_receipt_status(notifier):
    assert notifier.status_map
    for raw, status in notifier.status_map.items():
        assert status is None or status in RECEIPT_RANKS, raw


def test_every_twilio_message_status_is_mapped():
    """twilio-openapi MessageEnumStatus."""
    documented = {"queued", "sending", "sent", "failed", "delivered", "undelivered",
                  "receiving", "received", "accepted", "scheduled", "read",
                  "partially_delivered", "canceled"}
    assert documented <= set(sms.STATUS_MAP)
