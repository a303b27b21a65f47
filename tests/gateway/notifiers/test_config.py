"""``notifiers.yaml`` under the couriers' rules: hosts from the deploy's list, sandbox entries
on this machine, credentials as secrets."""

from __future__ import annotations

import pytest

from gateway.errors import StartupError
from gateway.settings import ConfigError
from tests.gateway.notifiers.conftest import WA

LIVE_SECRET = "tH1s-is-a-test-only-key-AAAAAAAAAAAAAAAAAAA="


def live_whatsapp(base_url: str, **more) -> dict:
    return {"whatsapp_sandbox": {"enabled": False}, "sms_sandbox": {"enabled": False},
            "whatsapp": {"base_url": base_url, **WA, **more}}


def test_a_notifier_may_call_only_the_hosts_the_deploy_lists(make_app):
    with pytest.raises(ConfigError) as refused:
        make_app(notifiers=live_whatsapp("https://graph.facebook.com.evil.example"),
                 notifier_hosts=["https://graph.facebook.com"])
    [(file, path, reason)] = refused.value.problems
    assert file.endswith("notifiers.yaml") and path == "whatsapp.base_url"
    assert "notifier_hosts" in reason
    app = make_app(notifiers=live_whatsapp("https://graph.facebook.com"),
                   notifier_hosts=["https://graph.facebook.com"], mode="live",
                   secret_key=LIVE_SECRET)
    assert not app.extensions["gateway"].notifiers["whatsapp"].sandbox


def test_a_sandbox_notifier_talks_only_to_this_machine(make_app):
    with pytest.raises((ConfigError, StartupError)):
        make_app(notifiers=live_whatsapp("https://graph.facebook.com", sandbox=True),
                 notifier_hosts=["https://graph.facebook.com"])


def test_credentials_are_declared_secret_and_required(make_app):
    from gateway.notifiers.sms.adapter import SmsConfigSchema
    from gateway.notifiers.whatsapp.adapter import WhatsAppConfigSchema

    for schema, names in ((WhatsAppConfigSchema, {"access_token", "app_secret",
                                                  "verify_token"}),
                          (SmsConfigSchema, {"auth_token"})):
        fields = schema().fields
        assert {n for n, f in fields.items() if f.metadata.get("secret")} == names
    entry = live_whatsapp("https://graph.facebook.com")
    del entry["whatsapp"]["app_secret"]
    with pytest.raises(ConfigError, match="whatsapp.app_secret"):
        make_app(notifiers=entry, notifier_hosts=["https://graph.facebook.com"])
