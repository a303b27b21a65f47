"""Invariants that catch drift forever: authentication everywhere, one error shape, hooks
documented with their exact signatures."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from gateway import create_app, hookspecs
from gateway.testing import free_port
from tests.conftest import CONFIG_DIR, SERVICE_PLUGINS

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_ENDPOINTS = {"health.healthz", "health.readyz", "health.metrics", "openapi.openapi_json",
                    "openapi.api_docs", "webhooks.receive", "webhooks.notifier_handshake",
                    "webhooks.notifier_receive", "console.sign_in",
                    "console.choose_language", "console.static", "public.tracking",
                    "public.survey"}
HOOK_NAMES = sorted(name for name in dir(hookspecs)
                    if hasattr(getattr(hookspecs, name), "gateway_spec"))


def assert_error_shape(response, status=None):
    assert response.mimetype == "application/json", response.data[:200]
    body = response.get_json()
    assert set(body) <= {"code", "message", "status", "correlation_id", "fields", "checks",
                         "details"}
    assert isinstance(body["code"], str) and re.fullmatch(r"[a-z][a-z_]+", body["code"])
    assert isinstance(body["message"], str) and body["message"]
    assert body["status"] == response.status_code
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    if response.status_code == 422:
        assert body["fields"] and all(isinstance(v, list) and all(isinstance(m, str) for m in v)
                                      for v in body["fields"].values())
    else:
        assert "fields" not in body
    assert b"Traceback" not in response.data
    if status is not None:
        assert response.status_code == status


def concrete_url(rule) -> str:
    def value(match):
        converter, name = match.group(1) or "", match.group(2)
        if converter.startswith("any("):
            return converter[4:].split(",")[0].strip(" )")
        return "medicine_delivery" if name == "service_name" else "x" * 8

    return re.sub(r"<(?:([^:>]+):)?([^>]+)>", value, rule.rule)


def test_every_route_requires_authentication_unless_marked_public(app, client):
    public = set()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(concrete_url(rule), method=method)
            if getattr(app.view_functions[rule.endpoint], "gateway_public", False):
                public.add(rule.endpoint)
                assert response.status_code != 401, rule.rule
            elif rule.endpoint.startswith("console."):
                # console pages send people to the sign-in form instead of answering 401
                assert response.status_code == 302, rule.rule
                assert response.headers["Location"].startswith("/console/sign-in"), rule.rule
            else:
                assert_error_shape(response, 401)
                assert response.get_json()["code"] == "unauthenticated", rule.rule
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert public == PUBLIC_ENDPOINTS, "a public route was added or removed: update this list"


@pytest.mark.parametrize("authorization", [
    "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-key",
    "Bearer gw_live_AAAAAAAAAA_" + "B" * 40, "bearer gw_live_short_key"])
def test_malformed_or_unknown_keys_are_401(client, authorization):
    response = client.get("/api/v1/services", headers={"Authorization": authorization})
    assert_error_shape(response, 401)


def test_a_key_for_a_real_prefix_with_a_wrong_secret_is_401(agency, client):
    forged = agency.key[:-5] + "ZZZZZ"
    assert_error_shape(client.get("/api/v1/services",
                                  headers={"Authorization": f"Bearer {forged}"}), 401)


def test_every_error_response_has_the_one_shape(app, client, agency, medicine_body):
    create = "/api/v1/services/medicine_delivery/requests"
    request_id = agency.post(create, json=medicine_body).get_json()["id"]
    agency.post(f"/api/v1/requests/{request_id}/cancel")
    cases = [
        (client.get("/api/v1/services"), 401),
        (agency.get("/nowhere"), 404),
        (agency.get("/api/v1/requests/nope"), 404),
        (agency.post("/api/v1/services/pizza/requests", json={}), 404),
        (agency.client.delete("/api/v1/services", headers=agency._headers(None)), 405),
        (agency.post(f"/api/v1/requests/{request_id}/cancel"), 409),
        (agency.post(create, data="{", content_type="application/json"), 400),
        (agency.post(create, data="x", content_type="text/plain"), 415),
        (agency.post(create, json={"patient": 1}), 422),
        (agency.get("/api/v1/requests?limit=-1"), 422),
        (agency.post(create, data="[" * 300_000, content_type="application/json"), 413),
    ]
    for response, status in cases:
        assert_error_shape(response, status)


def test_an_unexpected_exception_is_a_json_500_without_a_traceback(app, agency):
    def explode():
        raise RuntimeError("secret internals: NIK 3510011203650002")

    app.add_url_rule("/api/v1/explode", "explode", explode)
    response = agency.get("/api/v1/explode")
    assert_error_shape(response, 500)
    assert response.get_json()["code"] == "internal_error"
    assert b"3510011203650002" not in response.data
    assert b"secret internals" not in response.data


def test_an_unreachable_database_is_503_with_the_shape(tmp_path, gateway_redis_url):
    app = create_app({"config_dir": str(CONFIG_DIR), "data_dir": str(tmp_path),
                      "database_url": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x",
                      "redis_url": gateway_redis_url}, plugins=SERVICE_PLUGINS)
    client = app.test_client()
    response = client.get("/api/v1/services",
                          headers={"Authorization": "Bearer gw_live_AAAAAAAAAA_" + "B" * 40})
    assert_error_shape(response, 503)
    assert response.get_json()["code"] == "service_unavailable"
    assert response.headers["Retry-After"]
    ready = client.get("/readyz")
    assert_error_shape(ready, 503)
    assert ready.get_json()["checks"]["database"].startswith("unavailable")
    assert ready.get_json()["checks"]["redis"] == "ok"


def test_readyz_reports_a_lost_redis(make_app):
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    ready = app.test_client().get("/readyz")
    assert_error_shape(ready, 503)
    assert ready.get_json()["checks"] == {"database": "ok",
                                          "redis": "unavailable: ConnectionError"}
    ready = make_app().test_client().get("/readyz").get_json()
    assert (ready["status"], ready["checks"], ready["lagging"]) == (
        "ready", {"database": "ok", "redis": "ok"}, False)


def test_a_supplied_correlation_id_is_echoed_and_a_bad_one_replaced(client):
    good = client.get("/healthz", headers={"X-Correlation-ID": "pharmacy-req-0001"})
    assert good.headers["X-Correlation-ID"] == "pharmacy-req-0001"
    bad = client.get("/healthz", headers={"X-Correlation-ID": "<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["X-Correlation-ID"])


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_every_hookspec_is_documented_with_its_exact_signature(gateway, name):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    argnames = getattr(gateway.pm.hook, name).spec.argnames
    heading = f"### `{name}({', '.join(argnames)})`"
    assert heading in guide.splitlines(), f"docs/plugins.md lacks the heading {heading}"


def test_the_core_never_names_or_imports_a_service():
    offenders = []
    for path in (ROOT / "gateway").rglob("*.py"):
        source = path.read_text()
        for word in ("medicine_delivery", "umkm_pickup", "tourism_transport", "import plugins",
                     "from plugins"):
            if word in source:
                offenders.append(f"{path.relative_to(ROOT)}: {word}")
    assert offenders == []


#: where HTTP errors may be named: the edges that speak HTTP
HTTP_EDGES = ("gateway/api/", "gateway/console/", "gateway/public/")
HTTP_ERROR_NAMES = {"ApiError", "HTTPException", "abort", "error_response"}


def http_error_imports(root: Path, folders=("gateway", "plugins", "examples")) -> list[str]:
    """Each import of an HTTP error (werkzeug's exceptions, flask's ``abort``, the API's own
    ``ApiError``) by a module outside the HTTP edges, as ``path:line name``."""
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            where = path.relative_to(root).as_posix()
            if where.startswith(HTTP_EDGES):
                continue
            for node in ast.walk(ast.parse(path.read_text(), where)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names
                             if alias.name.startswith("werkzeug.exceptions")]
                elif isinstance(node, ast.ImportFrom):
                    module = node.module or ""
                    names = [f"{module}.{alias.name}" for alias in node.names
                             if module.startswith("werkzeug.exceptions")
                             or module.endswith("api.errors")
                             or alias.name in HTTP_ERROR_NAMES]
                else:
                    continue
                found.extend(f"{where}:{node.lineno} {name}" for name in names)
    return found


def test_no_module_outside_the_http_edges_imports_an_http_error():
    """The domain speaks domain (``gateway.errors``); only the edges speak HTTP."""
    assert http_error_imports(ROOT) == []


def test_the_http_error_scan_finds_what_it_looks_for(tmp_path):
    module = tmp_path / "gateway" / "records.py"
    module.parent.mkdir()
    module.write_text("from flask import abort\nfrom .api.errors import ApiError\n"
                      "import werkzeug.exceptions\nfrom .errors import NotFound\n")
    (tmp_path / "gateway" / "api").mkdir()
    (tmp_path / "gateway" / "api" / "v1.py").write_text("from .errors import ApiError\n")
    assert http_error_imports(tmp_path, folders=("gateway",)) == [
        "gateway/records.py:1 flask.abort", "gateway/records.py:2 api.errors.ApiError",
        "gateway/records.py:3 werkzeug.exceptions"]


def test_every_courier_adapter_maps_every_status_it_can_receive(gateway):
    from gateway.couriers.own_fleet.mapping import NEXT_STATES
    from gateway.statuses import Status

    for name, adapter in gateway.courier_classes.items():
        assert adapter.status_map, f"{name} declares no status map"
        assert all(v is None or isinstance(v, Status) for v in adapter.status_map.values())
    fleet_states = {"new", "cancelled"} | {after for _before, after in NEXT_STATES.values()}
    assert fleet_states == set(gateway.courier_classes["own_fleet"].status_map)
