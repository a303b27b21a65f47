"""The WhatsApp notifier: template messages through the WhatsApp Business Platform Cloud API.

Transport only; payloads and webhooks are translated in ``mapping.py`` (with the sources).
The access token (``Authorization: Bearer``), the app secret (which signs webhooks) and the
verify token (of the subscription handshake) come from ``notifiers.yaml`` as secrets.
A webhook whose ``X-Hub-Signature-256`` is not the HMAC-SHA256 of its raw body under the app
secret is refused; the handshake echoes the challenge only for our verify token.
"""

from __future__ import annotations

import hmac
import json
import re

from marshmallow import RAISE, Schema, fields, validate

from ...fields import Secret
from ...hookspecs import hookimpl
from .. import (
    NotifierAdapter,
    NotifierOutcomeUnknown,
    NotifierTemporaryError,
    SentMessage,
    WebhookRejected,
    check_signature,
)
from . import mapping

#: what Meta's challenge looks like (digits); anything else is not echoed
CHALLENGE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class WhatsAppConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                          metadata={"description": "https://graph.facebook.com live."})
    api_version = fields.String(load_default="v21.0",
                                validate=validate.Regexp(r"^v\d{1,3}\.\d{1,3}$"))
    phone_number_id = fields.String(required=True,
                                    validate=validate.Regexp(r"^[0-9A-Za-z_-]{1,64}$"))
    access_token = Secret(required=True)
    app_secret = Secret(required=True, validate=validate.Length(min=16))
    verify_token = Secret(required=True, validate=validate.Length(min=16))


class WhatsAppNotifier(NotifierAdapter):
    name = "whatsapp"
    channel = "whatsapp"
    config_schema = WhatsAppConfigSchema
    status_map = mapping.STATUS_MAP
    simulator = "gateway.notifiers.whatsapp.simulator:WhatsAppSimulator"

    def __init__(self, instance, config, session=None):
        super().__init__(instance, config, session)
        self.http.headers.update({"Authorization": f"Bearer {config['access_token']}"})

    def _send(self, message):
        payload = mapping.template_payload(message.to, message.template, message.language,
                                           message.parameters, message.reference)
        response = self.http.post(
            self.base_url + mapping.messages_path(self.config["api_version"],
                                                  self.config["phone_number_id"]),
            json=payload, timeout=self.timeout)
        body = self.json_of(response)
        code = mapping.error_code(body)
        if code in mapping.RATE_LIMIT_CODES:
            raise NotifierTemporaryError(f"throughput limit ({code})")
        self.raise_for_status(response, f"code {code}" if code is not None else "")
        message_id = mapping.parse_send_answer(body)
        if message_id is None:
            raise NotifierOutcomeUnknown("no message id in the answer")
        return SentMessage(message_id, "sent")

    def _verify_webhook(self, headers, raw_body):
        check_signature(headers.get(mapping.SIGNATURE_HEADER),
                        mapping.signature(raw_body, self.config["app_secret"]))

    def _parse_webhook(self, headers, raw_body):
        try:
            return mapping.parse_webhook(raw_body, self.config["phone_number_id"])
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a WhatsApp notification: {exc}") from None

    def handshake(self, args):
        if args.get("hub.mode") != "subscribe":
            return None
        token, challenge = args.get("hub.verify_token", ""), args.get("hub.challenge", "")
        if not CHALLENGE.fullmatch(challenge) or not hmac.compare_digest(token.encode(),
                                                    self.config["verify_token"].encode()):
            return None
        return challenge


@hookimpl
def register_notifiers():
    return [WhatsAppNotifier]

