"""Services and providers: the inventory, settings edited through forms generated from the
schemas, their history, rollback, who may do what, and credentials that never show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.models import AuditRecord, ConfigVersion
from tests.console.conftest import sign_in
from tests.console.page import by_id, parse, untranslated

SECRET = "pk-live-0123456789-never-on-a-page"


def versions(app) -> list[ConfigVersion]:
    with app.extensions["gateway"].db.read() as session:
        return session.scalars(select(ConfigVersion).order_by(ConfigVersion.id)).all()


def inputs(response) -> dict[str, str]:
    """The form's named inputs and their values, as a browser would submit them untouched."""
    form = by_id(response, "settings-form")
    values = {}
    for element in form.walk():
        name = element.attrs.get("name")
        if not name or element.tag == "button":
            continue
        if element.tag == "select":
            chosen = [o for o in element.all("option") if "selected" in o.attrs]
            values[name] = chosen[0].attrs["value"] if chosen else ""
        elif element.tag == "textarea":
            values[name] = "".join(c for c in element.children if isinstance(c, str))
        elif element.attrs.get("type") == "checkbox":
            if "checked" in element.attrs:
                values[name] = element.attrs["value"]
        else:
            values.setdefault(name, element.attrs.get("value", ""))
    return values


@pytest.fixture
def live_gosend_app(make_app, monkeypatch):
    """A live GO-SEND entry whose credentials come from the environment."""
    monkeypatch.setenv("GW_TEST_GOSEND_PASS_KEY", SECRET)
    monkeypatch.setenv("GW_TEST_GOSEND_WEBHOOK", SECRET + "-webhook")
    return make_app(couriers={"gosend": {
        "base_url": "https://integration-kilat-api.gojekapi.com",
        "client_id": "banyuwangi", "pass_key": {"$env": "GW_TEST_GOSEND_PASS_KEY"},
        "webhook_token": {"$env": "GW_TEST_GOSEND_WEBHOOK"}, "timeout_seconds": 8},
        "gosend_sandbox": {"enabled": False}, "own_fleet": {"enabled": False}})


def test_the_inventory_lists_services_and_couriers_with_versions_and_state(app, console_as):
    page = console_as("auditor").get("/console/services")
    assert page.status_code == 200
    services = {row[0].split()[0]: row for row in by_id(page, "service-list").rows()}
    assert set(services) == {"medicine_delivery", "umkm_pickup", "tourism_transport"}
    assert services["medicine_delivery"][1].startswith("banyuwangi-gateway")
    assert services["medicine_delivery"][2] == "0.1.0"
    assert services["medicine_delivery"][3] == "enabled"
    couriers = {row[0]: row for row in by_id(page, "courier-list").rows()}
    assert couriers["gosend_sandbox"][1:2] == ["gosend"]
    assert couriers["gosend_sandbox"][4:7] == ["disabled", "yes: a simulator",
                                               "circuit closed"]
    assert 'href="/console/services/courier/gosend_sandbox"' in page.get_data(as_text=True)
    assert [f for f in parse(page).all("form") if "toggle" in f.attrs.get("class", "")] == []


def test_an_admin_edits_a_courier_setting_through_the_form_and_sees_the_diff(
        live_gosend_app):
    admin = sign_in(live_gosend_app, "admin")
    page = admin.get("/console/services/courier/gosend")
    form = inputs(page)
    assert form["timeout_seconds"] == "8" and form["circuit.failure_threshold"] == ""
    assert by_id(page, "input-circuit.failure_threshold").attrs["placeholder"] == "5"
    form.update({"timeout_seconds": "4.5", "circuit.failure_threshold": "3",
                 ":note": "provider is slow today"})
    saved = admin.post("/console/services/courier/gosend", form)
    assert saved.status_code == 302
    assert saved.headers["Location"] == "/console/services/courier/gosend/history"
    (version,) = versions(live_gosend_app)
    assert version.data["timeout_seconds"] == 4.5
    assert version.data["pass_key"] == {"$env": "GW_TEST_GOSEND_PASS_KEY"}
    assert version.author == f"admin:{admin.username}" and version.note == \
        "provider is slow today"
    history = admin.get(saved.headers["Location"])
    assert "Saved as version" in history.get_data(as_text=True)
    row = by_id(history, f"version-{version.id}")
    assert "provider is slow today" in row.text and admin.username in row.text
    diff = row.all("pre")[0]
    assert [(s.attrs.get("class"), s.text) for s in diff.all("span") if s.attrs.get("class")] \
        == [("add", "+circuit:"), ("add", "+ failure_threshold: 3"),
            ("del", "-timeout_seconds: 8"), ("add", "+timeout_seconds: 4.5")]
    assert "WIB" in row.text
    gateway = live_gosend_app.extensions["gateway"]
    assert gateway.couriers["gosend"].timeout == 4.5          # this node: at once
    with gateway.db.read() as session:
        event = session.scalars(select(AuditRecord).where(
            AuditRecord.action == "config.change")).one()
    assert event.actor == f"admin:{admin.username}"
    assert event.details["changed"] == ["circuit.failure_threshold", "timeout_seconds"]


def test_saving_the_form_untouched_changes_nothing(live_gosend_app):
    admin = sign_in(live_gosend_app, "admin")
    for url in ("/console/services/courier/gosend",
                "/console/services/service/medicine_delivery",
                "/console/services/service/tourism_transport"):
        response = admin.post(url, inputs(admin.get(url)), follow_redirects=True)
        assert "Nothing changed." in response.get_data(as_text=True), url
    assert versions(live_gosend_app) == []


def test_an_invalid_value_is_shown_at_its_field_with_422_and_nothing_is_saved(app,
                                                                              console_as):
    admin = console_as("admin")
    url = "/console/services/service/medicine_delivery"
    form = inputs(admin.get(url))
    form["retention_days"] = "0"
    form["eligibility.rule"] = "sometimes"
    form["pickup_locations"] = form["pickup_locations"].replace("lat: -8.2166", "lat: north")
    response = admin.post(url, form)
    assert response.status_code == 422
    assert by_id(response, "error-retention_days").text == \
        "Must be greater than or equal to 1 and less than or equal to 3650."
    assert by_id(response, "error-eligibility.rule").text == "Must be one of: always, " \
        "allow_list, never."
    assert by_id(response, "error-pickup_locations").text == "0.location.lat: Not a valid number."
    assert by_id(response, "input-retention_days").attrs["value"] == "0"   # kept for fixing
    assert "lat: north" in by_id(response, "input-pickup_locations").text
    assert by_id(response, "form-errors")
    assert versions(app) == []


def test_yaml_that_does_not_parse_or_holds_more_than_plain_data_is_refused_at_its_field(
        app, console_as):
    admin = console_as("admin")
    url = "/console/services/service/umkm_pickup"
    response = admin.post(url, {"couriers": "- [own"})
    assert response.status_code == 422
    assert by_id(response, "error-couriers").text.startswith("Not valid YAML")
    dated = admin.post(url, {"couriers": "- own_fleet\n- 2026-11-28\n"})
    assert dated.status_code == 422
    assert by_id(dated, "error-couriers").text == \
        "1: Use only text, numbers, true/false, null, lists and mappings."
    assert versions(app) == []


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_operators_and_auditors_read_settings_but_see_no_form_and_may_not_change_them(
        app, console_as, role):
    user = console_as(role)
    page = user.get("/console/services/courier/gosend_sandbox")
    assert page.status_code == 200
    assert parse(page).find("settings-form") is None
    assert by_id(page, "value-timeout_seconds").text == "5"
    assert by_id(page, "value-pass_key").text == "set"
    main = next(e for e in parse(page).walk() if e.tag == "main")
    assert main.all("input") == main.all("select") == main.all("button") == []
    history = user.get("/console/services/courier/gosend_sandbox/history")
    assert history.status_code == 200 and 'class="rollback' not in history.get_data(as_text=True)
    for url, data in (("/console/services/courier/gosend_sandbox", {"timeout_seconds": "1"}),
                      ("/console/services/courier/gosend_sandbox/enabled", {"enabled": "true"}),
                      ("/console/services/courier/gosend_sandbox/rollback", {"version": "0"})):
        assert user.post(url, data).status_code == 403, url
    assert versions(app) == []


def test_a_rollback_restores_the_old_value(app, console_as):
    admin = console_as("admin")
    url = "/console/services/service/umkm_pickup"
    admin.post(url, {"retention_days": "40"})
    admin.post(url, {"retention_days": "50"})
    first, second = versions(app)
    gateway = app.extensions["gateway"]
    assert gateway.service_settings("umkm_pickup")["retention_days"] == 50
    history = admin.get(f"{url}/history")
    rollbacks = {f.attrs["data-version"] for f in parse(history).all("form")
                 if "rollback" in f.attrs.get("class", "")}
    assert rollbacks == {"0", str(first.id)}                # not the one in use
    response = admin.post(f"{url}/rollback", {"version": str(first.id)})
    assert response.status_code == 302
    *_, back = versions(app)
    assert back.data == first.data and back.note == f"rollback to v{first.id}"
    assert gateway.service_settings("umkm_pickup")["retention_days"] == 40
    assert by_id(admin.get(url), "input-retention_days").attrs["value"] == "40"
    admin.post(f"{url}/rollback", {"version": "0"})
    assert "retention_days" not in versions(app)[-1].data
    assert gateway.service_settings("umkm_pickup")["retention_days"] == 90
    assert admin.post(f"{url}/rollback", {"version": "999"}).status_code == 404


def test_an_admin_disables_and_enables_a_service_from_the_list(app, console_as):
    admin = console_as("admin")
    response = admin.post("/console/services/service/tourism_transport/enabled",
                          {"enabled": "false"}, follow_redirects=True)
    assert "tourism_transport disabled." in response.get_data(as_text=True)
    assert "disabled" in by_id(response, "service-tourism_transport").text
    assert "tourism_transport" not in app.extensions["gateway"].enabled_services()
    admin.post("/console/services/service/tourism_transport/enabled", {"enabled": "true"})
    assert [v.note for v in versions(app)] == ["disabled", "enabled"]
    assert "tourism_transport" in app.extensions["gateway"].enabled_services()


def test_a_credential_from_the_environment_never_shows_in_any_page(live_gosend_app):
    admin = sign_in(live_gosend_app, "admin")
    url = "/console/services/courier/gosend"
    page = admin.get(url)
    assert by_id(page, "reference-pass_key").text == "set"
    assert inputs(page)["pass_key"] == "" and inputs(page)["pass_key:source"] == "keep"
    admin.post(url, {"timeout_seconds": "6"})
    refused = admin.post(url, {"timeout_seconds": "0"})
    pages = [page, refused, admin.get(f"{url}/history"), admin.get("/console/services"),
             sign_in(live_gosend_app, "auditor").get(url)]
    for shown in pages:
        assert SECRET not in shown.get_data(as_text=True)
    # Pointing it at another variable is possible; typing a credential in is not.
    admin.post(url, {"pass_key:source": "value", "pass_key": "typed-in-secret"})
    assert versions(live_gosend_app)[-1].data["pass_key"] == {"$env": "GW_TEST_GOSEND_PASS_KEY"}
    admin.post(url, {"pass_key:source": "env", "pass_key": "GW_TEST_GOSEND_WEBHOOK"})
    assert versions(live_gosend_app)[-1].data["pass_key"] == {"$env": "GW_TEST_GOSEND_WEBHOOK"}


def test_unknown_kinds_and_names_are_404(app, console_as):
    admin = console_as("admin")
    assert admin.get("/console/services/plugin/medicine_delivery").status_code == 404
    assert admin.get("/console/services/service/nope").status_code == 404
    assert admin.get("/console/services/courier/nope/history").status_code == 404


def test_every_text_of_these_pages_has_its_indonesian_translation():
    from tests.console.page import catalog

    package = Path(__file__).resolve().parents[2] / "gateway" / "console"
    sources = [package / "views" / "services.py",
               *(package / "templates" / "console").glob("service*.html")]
    texts = {m.group(2) for source in sources for m in re.finditer(
        r"""_\(\s*(["'])(.+?)(?<!\\)\1\s*[,)]""", source.read_text())}
    texts |= {f"circuit {state}" for state in ("closed", "open", "half_open")}
    assert len(texts) > 50
    assert sorted(texts - set(catalog())) == []


def test_the_pages_are_in_indonesian(app, console_as):
    admin = console_as("admin")
    admin.post("/console/language", {"language": "id", "next": "/console/services"})
    admin.post("/console/services/service/umkm_pickup", {"retention_days": "40"})
    for url in ("/console/services", "/console/services/courier/gosend_sandbox",
                "/console/services/service/umkm_pickup/history"):
        page = admin.get(url)
        assert page.status_code == 200
        assert untranslated(page) == [], url
    listing = admin.get("/console/services").get_data(as_text=True)
    assert "Layanan dan penyedia" in listing and "sirkuit tertutup" in listing
    settings = admin.get("/console/services/courier/gosend_sandbox")
    assert by_id(settings, "field-timeout_seconds").all("label")[0].text == \
        "Batas waktu (detik)"


def test_a_landline_pickup_contact_is_refused_in_the_editor_naming_the_entry(app, console_as):
    """A courier's app cannot reach a fixed line: the pickup contact must be a mobile."""
    admin = console_as("admin")
    url = "/console/services/service/medicine_delivery"
    form = inputs(admin.get(url))
    form["pickup_locations"] = form["pickup_locations"].replace("0811-0000-0002",
                                                                "0333-000-0002")
    response = admin.post(url, form)
    assert response.status_code == 422
    assert by_id(response, "error-pickup_locations").text == \
        "1.phone: Must be a mobile number of region ID (+62..., 62... or 08...)."
    assert versions(app) == []
