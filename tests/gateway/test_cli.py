"""The ``gateway`` command, as an operator uses it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gateway import create_app
from gateway.cli import main
from gateway.testing import ConsoleClient
from tests.conftest import MEDICINE_BODY, SERVICE_PLUGINS, bearer
from tests.conftest import run_cli as run


@pytest.fixture
def app_for():
    built = []

    def build(config):
        app = create_app({"config_dir": str(config)}, plugins=SERVICE_PLUGINS)
        built.append(app.extensions["gateway"])
        return app, app.extensions["gateway"]

    yield build
    for gateway in built:
        gateway.db.dispose()


def test_db_upgrade_creates_the_schema(cli_env):
    code, output = run("db", "upgrade")
    assert code == 0
    assert re.search(r"database at revision \d{4}$", output.strip())


def test_agencies_create_prints_an_id_and_a_working_key(cli_env, app_for):
    run("db", "upgrade")
    code, output = run("agencies", "create", "Puskesmas Sobo", "--services",
                       "medicine_delivery,umkm_pickup", "--callback-url",
                       "https://example.invalid/hook")
    assert code == 0, output
    key = re.search(r"api key:\s+(\S+)", output).group(1)
    assert re.search(r"agency id:\s+[0-9a-f-]{36}", output)
    app, _gateway = app_for(cli_env)
    response = app.test_client().get("/api/v1/services",
                                     headers={"Authorization": f"Bearer {key}"})
    assert [s["name"] for s in response.get_json()["services"]] == \
        ["medicine_delivery", "umkm_pickup"]


def test_agencies_create_refuses_unknown_services_and_duplicates(cli_env):
    run("db", "upgrade")
    code, output = run("agencies", "create", "X", "--services", "pizza")
    assert code == 1 and "unknown service(s): pizza" in output
    run("agencies", "create", "Y", "--services", "medicine_delivery")
    code, output = run("agencies", "create", "Y", "--services", "medicine_delivery")
    assert code == 1 and "already exists" in output


def test_keys_issue_and_revoke_rotate_credentials(cli_env, app_for):
    run("db", "upgrade")
    _code, output = run("agencies", "create", "Dinkes", "--services", "medicine_delivery")
    first = re.search(r"api key:\s+(\S+)", output).group(1)
    code, second = run("keys", "issue", "Dinkes", "--test")
    second = second.strip()
    assert code == 0 and second.startswith("gw_test_")
    app, _gateway = app_for(cli_env)
    client = app.test_client()

    def status(key):
        return client.get("/api/v1/services", headers={"Authorization": f"Bearer {key}"}
                          ).status_code

    assert status(first) == status(second) == 200
    prefix = "_".join(first.split("_")[:3])
    code, output = run("keys", "revoke", prefix)
    assert code == 0 and prefix in output
    assert status(first) == 401
    assert status(second) == 200
    assert run("keys", "revoke", "gw_live_nosuchkey0")[0] == 1


def test_audit_verify_reports_an_intact_chain_and_names_a_tampered_record(cli_env, app_for):
    run("db", "upgrade")
    run("agencies", "create", "Dinkes", "--services", "medicine_delivery")
    run("keys", "issue", "Dinkes")
    code, output = run("audit", "verify")
    assert code == 0 and "audit chain intact: 3 record(s) verified" in output
    _app, gateway = app_for(cli_env)
    with gateway.db.write() as session:
        session.execute(text("UPDATE audit_records SET actor = 'someone-else' WHERE seq = 2"))
    code, output = run("audit", "verify")
    assert code == 1
    assert "BROKEN at record 2" in output


def test_config_check_accepts_the_shipped_config(cli_env):
    code, output = run("config", "check")
    assert code == 0 and "is valid" in output


def test_config_check_names_file_key_path_and_reason(cli_env):
    services = cli_env / "services.yaml"
    services.write_text(services.read_text().replace(
        "location: {lat: -8.2166, lng: 114.3632}", "location: {lat: north, lng: 114.3632}"))
    (cli_env / "gateway.yaml").write_text("jobs:\n  intervals: [5, soon]\nport: 99999\n")
    code, output = run("config", "check")
    assert code == 2
    assert "services.yaml: medicine_delivery.pickup_locations.0.location.lat: " \
           "Not a valid number." in output
    assert "gateway.yaml: jobs.intervals.1: Not a valid integer." in output
    assert "gateway.yaml: port: Must be greater than or equal to 1 and less than or equal " \
           "to 65535." in output


def test_a_missing_secret_environment_variable_is_named(cli_env, monkeypatch):
    (cli_env / "gateway.yaml").write_text("secret_key: {$env: GW_TEST_UNSET_SECRET}\n")
    monkeypatch.delenv("GW_TEST_UNSET_SECRET", raising=False)
    code, output = run("config", "check")
    assert code == 2
    assert "gateway.yaml: secret_key: environment variable GW_TEST_UNSET_SECRET is not set" \
        in output


def test_an_invalid_config_stops_every_command_with_the_message_not_a_traceback(cli_env):
    (cli_env / "gateway.yaml").write_text("mode: chaos\n")
    code, output = run("plugins")
    assert code == 2
    assert "gateway.yaml: mode: Must be one of: sandbox, live." in output
    assert "Traceback" not in output


def test_plugins_lists_the_installed_services_with_versions_and_hooks(cli_env):
    code, output = run("plugins")
    assert code == 0
    assert re.search(r"medicine_delivery\s+0\.1\.0\s+\[banyuwangi-gateway\]\s+hooks: "
                     r"eligibility_for, register_jobs, register_services, track_event", output)
    assert "gateway.auth  -  [core]  hooks: actor_from_request" in output
    assert "services: medicine_delivery, tourism_transport, umkm_pickup" in output


def test_the_console_script_is_installed(cli_env):
    gateway_bin = shutil.which("gateway") or str(
        __import__("pathlib").Path(sys.executable).parent / "gateway")
    result = subprocess.run([gateway_bin, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for command in ("up", "serve", "worker", "agencies", "keys", "audit", "config",
                    "plugins", "db"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


def test_sweep_command_reports_what_it_requeued(cli_env):
    run("db", "upgrade")
    code, output = run("sweep")
    assert code == 0 and "re-enqueued 0 job(s)" in output


def test_admins_create_takes_the_password_from_the_environment_and_it_signs_in(
        cli_env, app_for, monkeypatch):
    run("db", "upgrade")
    monkeypatch.setenv("GATEWAY_ADMIN_PASSWORD", "a-long-enough-password")
    code, output = run("admins", "create", "nur", "--role", "operator")
    assert code == 0 and "nur" in output, output
    code, output = run("admins", "create", "nur", "--role", "admin")
    assert code != 0 and "already exists" in output
    monkeypatch.setenv("GATEWAY_ADMIN_PASSWORD", "short")
    code, output = run("admins", "create", "eko", "--role", "admin")
    assert code != 0 and "at least 10 characters" in output
    code, output = run("admins", "list")
    assert re.search(r"^nur\s+operator\s+active$", output, re.M) and "eko" not in output
    app, _gateway = app_for(cli_env)
    client = app.test_client()
    form = client.get("/console/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    signed_in = client.post("/console/sign-in", data={
        "csrf_token": token, "username": "nur", "password": "a-long-enough-password"})
    assert signed_in.status_code == 302 and signed_in.headers["Location"].endswith("/console/")


def test_admins_create_agency_staff_who_sees_only_that_agency_in_its_world(
        cli_env, app_for, monkeypatch):
    run("db", "upgrade")
    key = re.search(r"api key:\s+(\S+)", run("agencies", "create", "Puskesmas Sobo",
                                               "--services", "medicine_delivery")[1]).group(1)
    run("agencies", "create", "Puskesmas Other", "--services", "medicine_delivery")
    monkeypatch.setenv("GATEWAY_ADMIN_PASSWORD", "a-long-enough-password")
    code, output = run("admins", "create", "rina", "--role", "agency_staff")
    assert code != 0 and "needs an agency" in output
    code, output = run("admins", "create", "rina", "--role", "agency_staff", "--agency",
                       "Nowhere")
    assert code != 0 and "no agency" in output
    code, output = run("admins", "create", "ops", "--role", "operator", "--agency",
                       "Puskesmas Sobo")
    assert code != 0 and "belongs to no agency" in output
    code, output = run("admins", "create", "rina", "--role", "agency_staff", "--agency",
                       "Puskesmas Sobo", "--test")
    assert code == 0 and "Puskesmas Sobo (test)" in output, output
    code, output = run("admins", "list")
    assert re.search(r"^rina\s+agency_staff\s+active\s+agency \S+ test$", output, re.M)
    app, _gateway = app_for(cli_env)
    made = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                  json=MEDICINE_BODY, headers=bearer(key))
    assert made.status_code == 202        # a live request: not in rina's test world
    console = ConsoleClient.sign_in(app, "rina", "a-long-enough-password")
    page = console.get("/console/requests").get_data(as_text=True)
    assert made.get_json()["id"] not in page and "Puskesmas Sobo" in page
    assert console.get(f"/console/requests/{made.get_json()['id']}").status_code == 404


def test_admins_create_without_a_password_or_a_terminal_says_so(cli_env, monkeypatch):
    run("db", "upgrade")
    monkeypatch.delenv("GATEWAY_ADMIN_PASSWORD", raising=False)
    code, output = run("admins", "create", "ani", "--role", "auditor")
    assert code != 0 and "GATEWAY_ADMIN_PASSWORD" in output


def test_identifiers_digest_prints_keyed_entries_that_the_allow_list_accepts(
        cli_env, app_for, medicine_body):
    import yaml

    run("db", "upgrade")
    key = re.search(r"api key:\s+(\S+)", run("agencies", "create", "Dinkes", "--services",
                                               "medicine_delivery")[1]).group(1)
    nik = medicine_body["patient"]["nik"]
    result = CliRunner().invoke(main, ["identifiers", "digest"], input=f"{nik}\n\n")
    assert result.exit_code == 0, result.output
    entries = yaml.safe_load(result.stdout)
    assert len(entries) == 1 and nik not in result.output
    services = yaml.safe_load((cli_env / "services.yaml").read_text())
    services["medicine_delivery"]["eligibility"] = {"rule": "allow_list", "required": True,
                                                    "allow_list_nik_hmac": entries}
    (cli_env / "services.yaml").write_text(yaml.safe_dump(services))
    assert run("config", "check")[0] == 0
    app, _gateway = app_for(cli_env)
    create = "/api/v1/services/medicine_delivery/requests"
    headers = {"Authorization": f"Bearer {key}"}
    listed = app.test_client().post(create, json=medicine_body, headers=headers)
    assert listed.status_code == 202 and listed.get_json()["eligibility"]["eligible"]
    other = {**medicine_body, "prescription_id": "RX-OTHER-1",
             "patient": {**medicine_body["patient"], "nik": "3510011203650003"}}
    refused = app.test_client().post(create, json=other, headers=headers)
    assert (refused.status_code, refused.get_json()["code"]) == (422, "not_eligible")


def test_the_callbacks_queue_never_shares_a_worker_with_our_own_work(cli_env):
    code, output = run("worker", "--burst", "--queue", "callbacks", "--queue", "default")
    assert code == 2
    assert "the callbacks queue runs in workers of its own" in output
