"""Attacks through the settings pages: a console admin reading the server's files and
environment through a settings field, and secrets shown back on a page.

A secret reference (``{$env: NAME}``, ``{$file: PATH}``) resolves only in a field its schema
declares secret; anywhere else the console refuses it at its field and stores nothing. A
secret is write-only: a page says "set", never its value, its variable or its file.
"""

from __future__ import annotations

import pytest
from marshmallow import RAISE, Schema, fields
from sqlalchemy import select

from gateway import CourierAdapter, hookimpl
from gateway.models import ConfigVersion
from tests.conftest import SERVICE_PLUGINS
from tests.console.conftest import sign_in
from tests.console.page import by_id

MARKER = "server-side-secret-MARKER-0123456789"


def versions(app) -> list[ConfigVersion]:
    with app.extensions["gateway"].db.read() as session:
        return session.scalars(select(ConfigVersion).order_by(ConfigVersion.id)).all()


@pytest.fixture
def server_secrets(tmp_path, monkeypatch):
    """A file and an environment variable on the server that the console must not read."""
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(MARKER)
    monkeypatch.setenv("GW_TEST_SERVER_SECRET", MARKER)
    return secret_file


def _pickup_yaml(admin, url, reference: str) -> str:
    page = admin.get(url)
    area = by_id(page, "input-pickup_locations")
    text = "".join(c for c in area.children if isinstance(c, str))
    assert "name: Puskesmas Sobo" in text
    return text.replace("name: Puskesmas Sobo", f"name: {reference}", 1)


@pytest.mark.parametrize("reference", [
    "{$file: /etc/passwd}", "{$file: SECRET_FILE}", "{$env: GW_TEST_SERVER_SECRET}",
    "{$env: GATEWAY_SECRET_KEY, default: x}"])
def test_a_reference_in_a_plain_service_field_is_refused_at_that_field(
        app, console_as, server_secrets, reference):
    admin = console_as("admin")
    url = "/console/services/service/medicine_delivery"
    form = {"pickup_locations": _pickup_yaml(
        admin, url, reference.replace("SECRET_FILE", str(server_secrets)))}
    response = admin.post(url, form)
    assert response.status_code == 422
    assert "secret" in by_id(response, "error-pickup_locations").text
    html = response.get_data(as_text=True)
    assert MARKER not in html and "root:x:0:0" not in html
    assert versions(app) == []
    place = app.extensions["gateway"].service_configs["medicine_delivery"]["pickup_locations"][0]
    assert place["name"] == "Puskesmas Sobo"


def test_a_plain_courier_field_cannot_be_pointed_at_another_variable(
        make_app, monkeypatch):
    """``base_url`` may keep the reference the deploy's files give it, and nothing else."""
    monkeypatch.setenv("GW_TEST_SERVER_SECRET", "http://127.0.0.1:9")
    app = make_app()
    admin = sign_in(app, "admin")
    url = "/console/services/courier/gosend_sandbox"
    response = admin.post(url, {"base_url:source": "env", "base_url": "GW_TEST_SERVER_SECRET"})
    assert response.status_code == 422
    assert "secret" in by_id(response, "error-base_url").text
    assert versions(app) == []
    # Keeping the files' own reference is fine.
    kept = admin.post(url, {"base_url:source": "keep", "timeout_seconds": "4"})
    assert kept.status_code == 302
    assert versions(app)[-1].data["base_url"]["$env"] == "GATEWAY_GOSEND_SIMULATOR_URL"


def test_a_version_stored_with_a_reference_in_a_plain_field_is_not_applied(
        app, server_secrets):
    """A version saved before the rule (or written to the database by hand) is refused when
    a node loads it: the settings in use stay."""
    gateway = app.extensions["gateway"]
    data = dict(gateway.settings.raw_services["medicine_delivery"])
    data["pickup_locations"] = [{**data["pickup_locations"][0],
                                 "name": {"$file": str(server_secrets)}}]
    with gateway.db.write() as session:
        session.add(ConfigVersion(target="service:medicine_delivery", data=data,
                                  author="admin:someone"))
    gateway.refresh_config(force=True)
    place = gateway.service_configs["medicine_delivery"]["pickup_locations"][0]
    assert place["name"] == "Puskesmas Sobo"


# -- secrets are write-only ---------------------------------------------------------------
SECRET_VALUE = "pk-live-0123456789-never-on-a-page"
LITERAL = "literal-SIGNING-material-never-shown-0001"


class VaultConfigSchema(Schema):
    """A provider whose credential has an innocent name: only its schema says it is secret."""

    class Meta:
        unknown = RAISE

    signing_material = fields.String(required=True, metadata={"secret": True})
    label = fields.String(load_default="vault")


class VaultCourier(CourierAdapter):
    name = "vault_courier"
    config_schema = VaultConfigSchema


class VaultPlugin:
    @hookimpl
    def register_couriers(self):
        return [VaultCourier]


@pytest.fixture
def secret_app(make_app, monkeypatch):
    monkeypatch.setenv("GW_TEST_GOSEND_PASS_KEY", SECRET_VALUE)
    monkeypatch.setenv("GW_TEST_GOSEND_WEBHOOK", SECRET_VALUE + "-webhook")
    monkeypatch.setenv("GW_TEST_VAULT", SECRET_VALUE + "-vault")
    monkeypatch.setenv("GW_TEST_GOSEND_PASS_2", SECRET_VALUE + "-2")
    return make_app(plugins=[*SERVICE_PLUGINS, VaultPlugin()], couriers={
        "gosend": {"base_url": "https://integration-kilat-api.gojekapi.com",
                   "client_id": "banyuwangi", "pass_key": {"$env": "GW_TEST_GOSEND_PASS_KEY"},
                   "webhook_token": {"$env": "GW_TEST_GOSEND_WEBHOOK"}},
        "vault": {"adapter": "vault_courier", "sandbox": True, "signing_material": LITERAL},
        "gosend_sandbox": {"enabled": False}, "own_fleet": {"enabled": False}})


def test_a_secret_is_shown_as_set_never_as_its_value_variable_or_file(secret_app):
    admin = sign_in(secret_app, "admin")
    url = "/console/services/courier/gosend"
    page = admin.get(url)
    assert by_id(page, "reference-pass_key").text == "set"
    assert by_id(page, "input-pass_key").attrs.get("value", "") == ""
    html = page.get_data(as_text=True)
    assert "GW_TEST_GOSEND_PASS_KEY" not in html and SECRET_VALUE not in html
    # Replacing it: the new variable is stored, and no page names either one.
    saved = admin.post(url, {"pass_key:source": "env", "pass_key": "GW_TEST_GOSEND_PASS_2"})
    assert saved.status_code == 302
    assert versions(secret_app)[-1].data["pass_key"] == {"$env": "GW_TEST_GOSEND_PASS_2"}
    auditor = sign_in(secret_app, "auditor")
    for client in (admin, auditor):
        for shown in (client.get(url), client.get(f"{url}/history"),
                      client.get("/console/services")):
            text = shown.get_data(as_text=True)
            for leak in ("GW_TEST_GOSEND_PASS", SECRET_VALUE):
                assert leak not in text, (client.role, shown.request.path, leak)
    assert by_id(auditor.get(url), "value-pass_key").text == "set"


def test_a_secret_declared_only_by_its_schema_never_shows_even_in_the_history(secret_app):
    admin = sign_in(secret_app, "admin")
    url = "/console/services/courier/vault"
    assert LITERAL not in admin.get(url).get_data(as_text=True)
    admin.post(url, {"signing_material:source": "env", "signing_material": "GW_TEST_VAULT"})
    admin.post(f"{url}/rollback", {"version": "0"})          # back to the files' literal
    assert [v.data["signing_material"] for v in versions(secret_app)] == \
        [{"$env": "GW_TEST_VAULT"}, LITERAL]
    for shown in (admin.get(url), admin.get(f"{url}/history")):
        text = shown.get_data(as_text=True)
        assert LITERAL not in text and "GW_TEST_VAULT" not in text
        assert SECRET_VALUE not in text
    assert "(hidden, changed)" in admin.get(f"{url}/history").get_data(as_text=True)
