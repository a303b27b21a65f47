"""Live configuration: changes validated as at start-up, versioned, audited, rolled back, and
picked up by every node and worker without a restart; secret references never resolved."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy import event, select

from gateway import create_app
from gateway.liveconfig import (
    ChangeRefused,
    diff,
    effective_section,
    history,
    rollback,
    save_version,
    validate_change,
)
from gateway.models import AuditRecord, ConfigVersion, ServiceRequest
from gateway.settings import ConfigError
from gateway.testing import drain
from tests.conftest import CONFIG_DIR, SERVICE_PLUGINS, bearer, new_key
from tests.fixture_plugins.scripted_courier import scripted_courier

CREATE = "/api/v1/services/medicine_delivery/requests"
SECRET = "s3cr3t-from-the-environment-0123"


def versions(gateway) -> list[ConfigVersion]:
    with gateway.db.read() as session:
        return session.scalars(select(ConfigVersion).order_by(ConfigVersion.id)).all()


def config_events(gateway) -> list[AuditRecord]:
    with gateway.db.read() as session:
        return session.scalars(select(AuditRecord).where(AuditRecord.action == "config.change")
                               .order_by(AuditRecord.seq)).all()


@pytest.fixture
def gosend_app(make_app, monkeypatch):
    """GO-SEND's sandbox entry enabled, its pass key read from the environment."""
    monkeypatch.setenv("GW_TEST_GOSEND_PASS", SECRET)
    return make_app(couriers={"gosend_sandbox": {"pass_key": {"$env": "GW_TEST_GOSEND_PASS"}},
                              "own_fleet": {"enabled": False}})


def test_a_bad_value_is_refused_with_its_key_path_and_the_start_up_reason(gosend_app, tmp_path,
                                                                          gateway_redis_url):
    gateway = gosend_app.extensions["gateway"]
    section = effective_section(gateway, "courier:gosend_sandbox")
    bad = {**section, "circuit": {"failure_threshold": 0}}
    problems = validate_change(gateway, "courier:gosend_sandbox", bad)
    # Start-up says the same thing, about the same key, for the same value.
    with pytest.raises(ConfigError) as caught:
        create_app({"config_dir": str(CONFIG_DIR), "data_dir": str(tmp_path / "other"),
                    "redis_url": gateway_redis_url, "couriers": {"gosend_sandbox": bad}},
                   plugins=SERVICE_PLUGINS)
    at_start_up = [(path, reason) for _file, path, reason in caught.value.problems]
    assert problems == [("circuit.failure_threshold", "Must be greater than or equal to 1.")]
    assert at_start_up == [("gosend_sandbox.circuit.failure_threshold",
                            "Must be greater than or equal to 1.")]


def test_the_service_plugin_schema_and_the_core_schema_both_apply(gateway):
    section = effective_section(gateway, "service:medicine_delivery")
    section["pickup_locations"][0]["location"]["lat"] = "north"
    section["retention_days"] = 0
    section["surprise"] = True
    problems = dict(validate_change(gateway, "service:medicine_delivery", section))
    assert problems == {"retention_days": "Must be greater than or equal to 1 and less than or "
                                          "equal to 3650.",
                        "pickup_locations.0.location.lat": "Not a valid number.",
                        "surprise": "Unknown field."}
    with pytest.raises(ChangeRefused) as refused:
        save_version(gateway, "service:medicine_delivery", section, "admin:test")
    assert ("surprise", "Unknown field.") in refused.value.problems
    assert versions(gateway) == [] and config_events(gateway) == []


def test_a_reference_to_a_variable_this_node_lacks_is_refused(gosend_app, monkeypatch):
    gateway = gosend_app.extensions["gateway"]
    monkeypatch.delenv("GW_TEST_NOT_SET", raising=False)
    section = {**effective_section(gateway, "courier:gosend_sandbox"),
               "webhook_token": {"$env": "GW_TEST_NOT_SET"}}
    problems = validate_change(gateway, "courier:gosend_sandbox", section)
    assert ("webhook_token", "environment variable GW_TEST_NOT_SET is not set") in problems


def test_the_adapter_refuses_what_it_would_refuse_at_start_up(gosend_app):
    gateway = gosend_app.extensions["gateway"]
    section = {**effective_section(gateway, "courier:gosend_sandbox"),
               "base_url": "https://kilat-api.gojekapi.com"}   # allowed, but live
    ((path, reason),) = validate_change(gateway, "courier:gosend_sandbox", section)
    assert path == "" and "marked sandbox" in reason


def test_changes_are_versioned_audited_and_rolled_back_as_new_versions(gateway):
    target = "service:umkm_pickup"
    original = effective_section(gateway, target)
    first = save_version(gateway, target, {**original, "retention_days": 45}, "admin:siti",
                         note="shorter")
    second = save_version(gateway, target, {**original, "retention_days": 60,
                                            "enabled": False}, "admin:budi")
    assert effective_section(gateway, target)["retention_days"] == 60
    assert save_version(gateway, target, effective_section(gateway, target), "admin:x") is None
    back = rollback(gateway, target, first.id, "admin:siti")
    assert back.note == f"rollback to v{first.id}" and back.data == first.data
    assert gateway.service_settings("umkm_pickup")["retention_days"] == 45
    to_files = rollback(gateway, target, 0, "admin:siti")
    assert to_files.data == original
    entries = history(gateway, target)
    assert [e.version for e in entries] == [to_files.id, back.id, second.id, first.id, 0]
    assert [e.author for e in entries[:4]] == ["admin:siti", "admin:siti", "admin:budi",
                                               "admin:siti"]
    assert [line for line in entries[2].diff.splitlines() if line[:1] in "+-"][2:] == [
        "-enabled: true", "-retention_days: 45", "+enabled: false", "+retention_days: 60"]
    events = config_events(gateway)
    assert [(e.actor, e.target, e.details) for e in events[:2]] == [
        ("admin:siti", target, {"version": first.id, "changed": ["retention_days"]}),
        ("admin:budi", target, {"version": second.id,
                                "changed": ["enabled", "retention_days"]})]
    with pytest.raises(LookupError):
        rollback(gateway, "service:medicine_delivery", first.id, "admin:siti")


def test_secret_references_are_never_resolved_in_versions_diffs_or_the_audit(gosend_app):
    gateway = gosend_app.extensions["gateway"]
    assert gateway.couriers["gosend_sandbox"].config["pass_key"] == SECRET  # in use, resolved
    target = "courier:gosend_sandbox"
    section = effective_section(gateway, target)
    assert section["pass_key"] == {"$env": "GW_TEST_GOSEND_PASS"}
    changed = {**section, "timeout_seconds": 3, "webhook_token": {"$file": "/run/token"},
               "pass_key": {"$env": "GW_TEST_GOSEND_PASS_2"}}
    with pytest.raises(ChangeRefused):   # neither is there on this node: refused, as at start
        save_version(gateway, target, changed, "admin:siti")
    changed["webhook_token"] = section["webhook_token"]
    changed["pass_key"] = {"$env": "GW_TEST_GOSEND_PASS"}
    version = save_version(gateway, target, changed, "admin:siti")
    (stored,) = versions(gateway)
    assert stored.data["pass_key"] == {"$env": "GW_TEST_GOSEND_PASS"}
    (event,) = config_events(gateway)
    shown = json.dumps(stored.data) + diff(section, changed) + json.dumps(event.details)
    shown += "".join(e.diff for e in history(gateway, target))
    assert SECRET not in shown
    # The simulator's demo token is written in couriers.yaml; diffs hide it all the same.
    assert section["webhook_token"] not in diff({}, changed)
    assert "webhook_token: (hidden)" in diff({}, changed)
    # A secret's reference is hidden too: a page says it is set, not where it comes from.
    assert "pass_key: (hidden)" in diff({}, changed)
    assert "GW_TEST_GOSEND_PASS" not in diff({}, changed)
    assert event.details == {"version": version.id, "changed": ["timeout_seconds"]}


def test_a_literal_secret_that_changed_shows_as_changed_not_as_its_value():
    text = diff({"api_secret": "old-value-1", "market": "ID"},
                {"api_secret": "new-value-2", "market": "ID"})
    assert text.splitlines()[2:] == ["@@ -1,2 +1,2 @@", "-api_secret: (hidden)",
                                     "+api_secret: (hidden, changed)", " market: ID"]


def wait_for(condition, seconds=2.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("not seen in time")


@pytest.mark.serial   # times the change reaching another node: alone, after the parallel run
def test_a_service_disabled_on_one_node_is_refused_by_another_within_seconds(
        make_app, medicine_body):
    console_node, api_node = make_app(), make_app()
    key = new_key(api_node)
    client = api_node.test_client()
    counter = iter(range(100, 1000))

    def submit():
        body = {**medicine_body, "prescription_id": f"RX-2026-000{next(counter)}"}
        return client.post(CREATE, json=body, headers=bearer(key)).status_code

    assert submit() == 202
    target = "service:medicine_delivery"
    console = console_node.extensions["gateway"]
    started = time.monotonic()
    save_version(console, target, {**effective_section(console, target), "enabled": False},
                 "admin:siti")
    seen = wait_for(lambda: submit() == 404)
    assert seen - started < 2.0
    assert "medicine_delivery" not in api_node.extensions["gateway"].enabled_services()


def test_a_worker_books_with_the_courier_settings_saved_on_another_node(make_app,
                                                                          medicine_body):
    plugin, courier = scripted_courier("fleet")
    services = {"medicine_delivery": {"couriers": ["fleet"]}}
    api_node = make_app(plugins=[*SERVICE_PLUGINS, plugin], services=services)
    worker_node = make_app(plugins=[*SERVICE_PLUGINS, plugin], services=services)
    worker = worker_node.extensions["gateway"]
    assert worker.couriers["fleet"].timeout == 10.0
    api = api_node.extensions["gateway"]
    save_version(api, "courier:fleet", {"timeout_seconds": 3.5, "circuit": {
        "failure_threshold": 2}}, "admin:siti")
    response = api_node.test_client().post(CREATE, json=medicine_body,
                                           headers=bearer(new_key(api_node, key_type="test")))
    assert response.status_code == 202
    drain(worker_node)                   # a real rq worker runs the dispatch job on that node
    assert worker.couriers["fleet"].timeout == 3.5
    assert worker.circuits.settings["fleet"]["failure_threshold"] == 2
    assert len(courier.booked) == 1
    with worker.db.read() as session:
        assert session.get(ServiceRequest, response.get_json()["id"]).provider == "fleet"


def test_a_version_that_does_not_validate_here_is_logged_and_the_old_settings_kept(
        make_app, caplog):
    app = make_app()
    gateway = app.extensions["gateway"]
    before = gateway.service_settings("umkm_pickup")
    with gateway.db.write() as session:       # as if written by a node with other plugins
        session.add(ConfigVersion(target="service:umkm_pickup", author="admin:elsewhere",
                                  data={"retention_days": "forever"}))
    with caplog.at_level(logging.ERROR, logger="gateway.core"):
        assert gateway.refresh_config(force=True) is False
        assert app.test_client().get("/healthz").status_code == 200
    assert gateway.service_settings("umkm_pickup") == before
    assert "umkm_pickup.retention_days: Not a valid integer." in caplog.text


def test_the_check_for_changes_costs_one_query_a_second_at_most(gateway):
    assert gateway.refresh_config(force=True) is False     # nothing new
    statements = []
    event.listen(gateway.db.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    for _ in range(50):
        gateway.refresh_config()
    assert statements == []
    gateway.refresh_config(force=True)
    queries = [s for s in statements if s != "BEGIN"]
    assert len(queries) == 1 and "max(config_versions.id)" in queries[0]
