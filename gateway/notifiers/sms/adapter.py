"""The SMS notifier, in Twilio's Programmable Messaging dialect.

Transport only; the form, receipts and signature are in ``mapping.py`` (with the sources).
The Account SID and Auth Token (HTTP Basic auth, and the key of the ``X-Twilio-Signature``
HMAC) come from ``notifiers.yaml``; ``status_callback_url`` is the public URL of our webhook
as Twilio is told it (``https://<gateway>/webhooks/notifiers/<entry>``): Twilio signs that
URL, so that is what is verified, never the URL the request claims to be for.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ...fields import Secret
from ...hookspecs import hookimpl
from .. import (
    NotifierAdapter,
    NotifierOutcomeUnknown,
    NotifierRejected,
    NotifierTemporaryError,
    SentMessage,
    WebhookRejected,
    check_signature,
)
from . import mapping

#: Twilio error codes that mean "never to this number by SMS" (not a mobile; unsubscribed)
REFUSED_CODES = frozenset({21211, 21408, 21610, 21612, 21614})


class SmsConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                          metadata={"description": "https://api.twilio.com live."})
    account_sid = fields.String(required=True, validate=validate.Regexp(r"^AC[0-9a-zA-Z]{8,}$"))
    auth_token = Secret(required=True, validate=validate.Length(min=16))
    sender = fields.String(load_default=None, metadata={
        "description": "The registered sender id or number (From)."})
    messaging_service_sid = fields.String(load_default=None,
                                          validate=validate.Regexp(r"^MG[0-9a-zA-Z]{8,}$"))
    status_callback_url = fields.Url(load_default=None, require_tld=False,
                                     schemes={"http", "https"}, metadata={
        "description": "Our webhook's public URL, as Twilio calls it (it signs it)."})

    @validates_schema
    def _one_sender(self, data, **kwargs):
        if bool(data.get("sender")) == bool(data.get("messaging_service_sid")):
            raise ValidationError("Set exactly one of sender and messaging_service_sid.")


class SmsNotifier(NotifierAdapter):
    name = "sms"
    channel = "sms"
    config_schema = SmsConfigSchema
    status_map = mapping.STATUS_MAP
    simulator = "gateway.notifiers.sms.simulator:SmsSimulator"
    #: the URL fields that name *our* address, not the provider's: not held to notifier_hosts
    own_urls = frozenset({"status_callback_url"})

    def __init__(self, instance, config, session=None):
        super().__init__(instance, config, session)
        self.http.auth = (config["account_sid"], config["auth_token"])

    def _send(self, message):
        sender = {"From": self.config["sender"]} if self.config.get("sender") else \
            {"MessagingServiceSid": self.config["messaging_service_sid"]}
        response = self.http.post(
            self.base_url + mapping.messages_path(self.config["account_sid"]),
            data=mapping.send_form(message.to, message.text, sender,
                                   self.config.get("status_callback_url")),
            timeout=self.timeout)
        body = self.json_of(response)
        code = mapping.error_code(body)
        if response.status_code == 400 and code in REFUSED_CODES:
            raise NotifierRejected(f"refused (code {code})")
        if code == 20429:
            raise NotifierTemporaryError("too many requests (20429)")
        self.raise_for_status(response, f"code {code}" if code is not None else "")
        sid = mapping.parse_send_answer(body)
        if sid is None:
            raise NotifierOutcomeUnknown("no message sid in the answer")
        return SentMessage(sid, "sending")

    def _verify_webhook(self, headers, raw_body):
        url = self.config.get("status_callback_url")
        if not url:
            raise WebhookRejected("no status_callback_url configured: nothing to verify")
        try:
            pairs = mapping.form_pairs(raw_body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("not a form body") from None
        check_signature(headers.get(mapping.SIGNATURE_HEADER),
                        mapping.signature(url, pairs, self.config["auth_token"]))

    def _parse_webhook(self, headers, raw_body):
        try:
            return mapping.parse_webhook(raw_body, self.config["account_sid"])
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a Twilio callback: {exc}") from None


@hookimpl
def register_notifiers():
    return [SmsNotifier]
