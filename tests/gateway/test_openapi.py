"""The OpenAPI document: valid OpenAPI 3, complete, and true to what the API answers."""

from __future__ import annotations

import re

from openapi_spec_validator import validate


def test_the_document_is_valid_openapi_3(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_every_registered_service_has_its_own_path_schema_and_example(client, gateway):
    spec = client.get("/api/openapi.json").get_json()
    for name, service in gateway.services.items():
        operation = spec["paths"][f"/api/v1/services/{name}/requests"]["post"]
        content = operation["requestBody"]["content"]["application/json"]
        component = content["schema"]["$ref"].rsplit("/", 1)[1]
        assert component in spec["components"]["schemas"]
        assert content["example"] == service.example_request
        assert {"202", "401", "422"} <= set(operation["responses"])


def test_each_service_example_is_accepted_by_the_api(gateway_make_agency, gateway):
    agency = gateway_make_agency(key_type="test")
    for name, service in gateway.services.items():
        response = agency.post(f"/api/v1/services/{name}/requests",
                               json=service.example_request)
        assert response.status_code == 202, (name, response.get_json())


def test_public_operations_say_so_and_the_rest_need_a_bearer_key(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    public = {path for path, ops in spec["paths"].items()
              for op in ops.values() if op.get("security") == []}
    assert public == {"/healthz", "/readyz", "/api/openapi.json", "/webhooks/{courier}",
                      "/webhooks/notifiers/{notifier}"}


def test_the_docs_page_lists_every_operation_without_external_scripts(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    spec = client.get("/api/openapi.json").get_json()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html
    assert "<script" not in html
    assert "RX-2026-000123" in html


def test_the_docs_page_forbids_scripts_framing_and_outside_resources(client):
    """The attack: text that reached the document (a plugin's description, an example) or a
    page framing ours tries to run a script, load a stylesheet from elsewhere or send a form
    out. The browser must be told to allow only the page's own inline style, by nonce."""
    page = client.get("/api/docs")
    policy = dict(part.strip().split(" ", 1) for part in
                  page.headers.get("Content-Security-Policy", "").split(";") if part.strip())
    assert policy.get("default-src") == "'none'"
    assert "script-src" not in policy                     # falls back to 'none'
    assert policy.get("frame-ancestors") == "'none'"
    assert policy.get("base-uri") == "'none'" and policy.get("form-action") == "'none'"
    nonce = re.search(r"'nonce-([^']+)'", policy.get("style-src", ""))
    assert nonce and "unsafe-inline" not in policy["style-src"]
    assert f'<style nonce="{nonce.group(1)}">' in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    again = client.get("/api/docs").headers["Content-Security-Policy"]
    assert again != page.headers["Content-Security-Policy"]   # a new nonce every time


def test_every_operation_has_its_own_operation_id(client):
    """Clients generated from the document (openapi-python-client and the like) name their
    functions by ``operationId``; without one they fall back to the path
    (``post_api_v1_services_medicine_delivery_requests``)."""
    spec = client.get("/api/openapi.json").get_json()
    ids = [op.get("operationId") for ops in spec["paths"].values() for op in ops.values()]
    assert None not in ids
    assert len(ids) == len(set(ids))
    assert {"checkLiveness", "checkReadiness", "listServices",
            "createMedicineDeliveryRequest", "createUmkmPickupRequest",
            "createTourismTransportRequest", "listRequests", "getRequest", "getRequestFhir",
            "cancelRequest", "listFleetJobs", "acceptFleetJob", "pickUpFleetJob",
            "deliverFleetJob", "receiveWebhook", "getOpenApiDocument"} <= set(ids)


NOT_THE_AGENCIES_API = {"health.metrics", "openapi.api_docs", "static"}


def test_every_api_route_is_documented_and_every_documented_operation_is_routed(app, client):
    """The document is generated from the views: a route added without its operation (YAML
    after ``---`` in the view's docstring) would be missing for every client, and an
    operation whose route went away would send them to a 404."""
    spec = client.get("/api/openapi.json").get_json()
    urls = app.url_map.bind("gateway.test")
    routed = set()
    for path, ops in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in ops:
            endpoint, _args = urls.match(concrete, method.upper())
            routed.add((endpoint, method.upper()))
    api_routes = {(rule.endpoint, method) for rule in app.url_map.iter_rules()
                  if not rule.endpoint.startswith(("console.", "public."))
                  and rule.endpoint not in NOT_THE_AGENCIES_API
                  for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == api_routes


def test_the_docs_page_says_what_each_error_answer_means(client):
    html = client.get("/api/docs").get_data(as_text=True)
    assert "<code>401</code> No valid API key (`unauthenticated`)." in html
    assert "<code>410</code> The personal data it needs was purged" in html
