"""The access matrix: every route, tried by every kind of caller, answers as the table says.

Callers: nobody, a malformed key, a revoked key, another agency's key, the owner's test key,
the owner's live key, an agency with the fleet_dispatch role, and a signed-in console user
of each role (admin, operator, auditor; the owner's agency staff and agency manager, both of
its test world; and another agency's staff). The owner's requests are made with its test key, so
its live key is a stranger to them (test and live keys are two worlds). A route added to the
app without a row here fails ``test_every_route_has_a_row``.

Console answers: ``login`` is a redirect to the sign-in page (no console session: API keys
never open the console, and a console cookie never opens the API); 302 is a redirect after a
form did its work (or reported why it could not); 403 is a role that may not do it.
"""

from __future__ import annotations

import pytest

from gateway import uploads
from gateway.agencies import acting_agency, create_agency, issue_key, revoke_key
from gateway.testing import drain
from tests.conftest import MEDICINE_BODY, bearer
from tests.console.conftest import sign_in

AGENCY_CALLERS = ("nobody", "malformed", "revoked", "stranger", "owner_test", "owner_live",
                  "fleet")
GATEWAY_STAFF = ("admin", "operator", "auditor")
#: agency accounts: (role, agency) -- the owner's, in its test world where {own} lives
AGENCY_ACCOUNTS = {"staff": ("agency_staff", "owner"), "manager": ("agency_manager", "owner"),
                   "stranger_staff": ("agency_staff", "stranger")}
CONSOLE_CALLERS = GATEWAY_STAFF + tuple(AGENCY_ACCOUNTS)
CALLERS = AGENCY_CALLERS + CONSOLE_CALLERS

DENIED = {"nobody": 401, "malformed": 401, "revoked": 401,
          **dict.fromkeys(CONSOLE_CALLERS, 401)}
LOGIN = dict.fromkeys(AGENCY_CALLERS, "login")


def everyone(status):
    return dict.fromkeys(CALLERS, status)


def console(admin, operator, auditor, staff=403, manager=None, stranger_staff=None):
    """A console route: agency callers are sent to sign in; each role gets its answer (the
    agency roles: 403 unless said, a manager and another agency's staff as staff unless
    said)."""
    return {**LOGIN, "admin": admin, "operator": operator, "auditor": auditor,
            "staff": staff, "manager": staff if manager is None else manager,
            "stranger_staff": staff if stranger_staff is None else stranger_staff}


def readable(status=200, **agency_roles):
    return console(status, status, status, **agency_roles)


# endpoint -> (method, path template, body, {caller: expected status})
# In paths: {own} a fresh request of the owner, {agency} the owner agency's id, {upload}
# a spreadsheet upload of the owner's test world.
ROWS = {
    "health.healthz": ("GET", "/healthz", None, everyone(200)),
    "health.readyz": ("GET", "/readyz", None, everyone(200)),
    # no metrics token in the test config: loopback callers (the test client) may scrape
    "health.metrics": ("GET", "/metrics", None, everyone(200)),
    "openapi.openapi_json": ("GET", "/api/openapi.json", None, everyone(200)),
    "openapi.api_docs": ("GET", "/api/docs", None, everyone(200)),
    "webhooks.receive": ("POST", "/webhooks/nosuchcourier", {}, everyone(404)),
    # the test app has no notifier enabled: every caller meets the same 404
    "webhooks.notifier_handshake": ("GET", "/webhooks/notifiers/nosuchnotifier", None,
                                    everyone(404)),
    "webhooks.notifier_receive": ("POST", "/webhooks/notifiers/nosuchnotifier", {},
                                  everyone(404)),
    # the citizens' pages: the token is the credential; an unknown one is 404 to everyone
    "public.tracking": ("GET", "/t/notatoken", None, everyone(404)),
    "public.survey": ("GET", "/s/notatoken", None, everyone(404)),
    "api_v1.list_services": ("GET", "/api/v1/services", None, {
        **DENIED, "stranger": 200, "owner_test": 200, "owner_live": 200, "fleet": 200}),
    "api_v1.create_service_request": (
        "POST", "/api/v1/services/medicine_delivery/requests", "medicine", {
            **DENIED, "stranger": 202, "owner_test": 202, "owner_live": 202, "fleet": 403}),
    "api_v1.list_requests": ("GET", "/api/v1/requests", None, {
        **DENIED, "stranger": 200, "owner_test": 200, "owner_live": 200, "fleet": 200}),
    # {own} is made with the owner's test key: to the owner's live key it is a missing id
    "api_v1.get_request": ("GET", "/api/v1/requests/{own}", None, {
        **DENIED, "stranger": 404, "owner_test": 200, "owner_live": 404, "fleet": 404}),
    "api_v1.request_view": ("GET", "/api/v1/requests/{own}/fhir", None, {
        **DENIED, "stranger": 404, "owner_test": 200, "owner_live": 404, "fleet": 404}),
    "api_v1.list_proof": ("GET", "/api/v1/requests/{own}/proof", None, {
        **DENIED, "stranger": 404, "owner_test": 200, "owner_live": 404, "fleet": 404}),
    # {own} has no proof image yet: the owner meets the missing image, the others the
    # missing request, and both are the same 404
    "api_v1.get_proof_image": ("GET", "/api/v1/requests/{own}/proof/images/0", None, {
        **DENIED, "stranger": 404, "owner_test": 404, "owner_live": 404, "fleet": 404}),
    "api_v1.cancel_request": ("POST", "/api/v1/requests/{own}/cancel", None, {
        **DENIED, "stranger": 404, "fleet": 404, "owner_test": 200, "owner_live": 404}),
    "fleet.list_jobs": ("GET", "/api/v1/fleet/jobs", None, {
        **DENIED, "stranger": 403, "owner_test": 403, "owner_live": 403, "fleet": 200}),
    "fleet.advance": ("POST", "/api/v1/fleet/jobs/nosuchjob/accept", None, {
        **DENIED, "stranger": 403, "owner_test": 403, "owner_live": 403, "fleet": 404}),
    # -- the console: public parts ---------------------------------------------------------
    "console.static": ("GET", "/console/static/console.css", None, everyone(200)),
    "console.sign_in": ("GET", "/console/sign-in", None, everyone(200)),
    "console.choose_language": ("POST", "/console/language", {"language": "en"}, {
        **dict.fromkeys(AGENCY_CALLERS, 400), **dict.fromkeys(CONSOLE_CALLERS, 302)}),
    "console.index": ("GET", "/console/", None, readable(302, staff=302)),
    "console.sign_out": ("POST", "/console/sign-out", {}, everyone("login")),
    # -- reading: every role ----------------------------------------------------------------
    "console.dashboard": ("GET", "/console/dashboard", None, readable()),
    # agency accounts: only their agency's world ({own} is the owner's test world)
    "console.requests": ("GET", "/console/requests", None, readable(staff=200)),
    "console.request_detail": ("GET", "/console/requests/{own}", None,
                               readable(staff=200, stranger_staff=404)),
    # a proof image is personal data: roles that may read it meet the missing image
    "console.proof_image": ("GET", "/console/requests/{own}/proof/0", None,
                            console(404, 404, 403)),
    "console.fleet": ("GET", "/console/fleet", None, readable()),
    "console.agencies": ("GET", "/console/agencies", None, readable()),
    "console.agency_detail": ("GET", "/console/agencies/{agency}", None, readable()),
    "console.agency_budgets": ("GET", "/console/agencies/{agency}/budgets", None, readable()),
    "console.services": ("GET", "/console/services", None, readable()),
    "console.services_settings": ("GET", "/console/services/service/medicine_delivery", None,
                                  readable()),
    "console.services_history": ("GET", "/console/services/service/medicine_delivery/history",
                                 None, readable()),
    "console.audit": ("GET", "/console/audit", None, readable()),
    "console.audit_verify": ("POST", "/console/audit/verify", {}, readable()),
    "console.audit_export_csv": ("GET", "/console/audit/export.csv", None, readable()),
    "console.audit_export_jsonl": ("GET", "/console/audit/export.jsonl", None, readable()),
    "console.queues": ("GET", "/console/queues", None, readable()),
    "console.messages": ("GET", "/console/messages", None, readable(staff=200)),
    "console.skm_page": ("GET", "/console/skm", None, readable()),
    # agency accounts see their own agency's figures (another agency's: 404, test_reports.py)
    "console.reports_page": ("GET", "/console/reports", None, readable(staff=200)),
    "console.reports_csv": ("GET", "/console/reports/days.csv", None, readable(staff=200)),
    "console.skm_answers_csv": ("GET", "/console/skm/answers.csv", None,
                                console(200, 200, 403)),
    "console.skm_complaints_csv": ("GET", "/console/skm/complaints.csv", None,
                                   console(200, 200, 403)),
    # -- handling requests and the fleet: admin and operator --------------------------------
    "console.cancel": ("POST", "/console/requests/{own}/cancel", {}, console(302, 302, 403)),
    "console.retry": ("POST", "/console/requests/{own}/retry", {}, console(302, 302, 403)),
    "console.fleet_step": ("POST", "/console/fleet/nosuchjob/accept", {"staff_name": "Ratna"},
                           console(302, 302, 403)),
    # -- agency accounts: a request by form, their agency's staff ------------------------------
    "console.new_request": ("GET", "/console/services/medicine_delivery/new", None,
                            console(403, 403, 403, staff=200)),
    # requests by spreadsheet: {upload} is the owner's, in its test world; an administrator
    # uploads for an agency it chooses
    "console.upload_template": ("GET", "/console/services/medicine_delivery/template.xlsx",
                                None, console(200, 403, 403, staff=200)),
    "console.upload": ("GET", "/console/services/medicine_delivery/upload", None,
                       console(200, 403, 403, staff=200)),
    "console.upload_detail": ("GET", "/console/uploads/{upload}", None,
                              console(200, 403, 403, staff=200, stranger_staff=404)),
    "console.upload_confirm": ("POST", "/console/uploads/{upload}/confirm", {},
                               console(302, 403, 403, staff=302, stranger_staff=404)),
    "console.upload_result": ("GET", "/console/uploads/{upload}/result.csv", None,
                              console(200, 403, 403, staff=200, stranger_staff=404)),
    "console.my_staff": ("GET", "/console/staff", None, console(403, 403, 403, manager=302)),
    "console.agency_staff": ("GET", "/console/agencies/{agency}/staff", None,
                             console(200, 403, 403, manager=200)),
    "console.create_staff": ("POST", "/console/agencies/{agency}/staff",
                             {"username": "staff-of-{caller}", "password": "long enough pass",
                              "role": "agency_staff", "key_type": "test"},
                             console(201, 403, 403, manager=201)),
    "console.remove_staff": ("POST", "/console/agencies/{agency}/staff/nosuchuser/remove", {},
                             console(404, 403, 403, manager=404)),
    # -- monthly statements: every staff role, an agency only its own; reconciling (no file:
    # the page says why) for admins, operators and the agency's own manager
    "console.my_statements": ("GET", "/console/statements", None,
                              console(403, 403, 403, staff=302)),
    "console.agency_statements": ("GET", "/console/agencies/{agency}/statements", None,
                                  readable(staff=200, stranger_staff=404)),
    "console.agency_statement_csv": ("GET", "/console/agencies/{agency}/statements.csv", None,
                                     readable(staff=200, stranger_staff=404)),
    "console.reconcile_statement": ("POST", "/console/agencies/{agency}/statements/reconcile",
                                    {"service": "medicine_delivery"},
                                    console(422, 422, 403, staff=403, manager=422)),
    # -- running the gateway: admin only ------------------------------------------------------
    "console.create_agency_view": ("POST", "/console/agencies",
                                   {"name": "Agency of {caller}",
                                    "services": "medicine_delivery"}, console(201, 403, 403)),
    "console.update_agency_view": ("POST", "/console/agencies/{agency}",
                                   {"services": "medicine_delivery", "active": "on"},
                                   console(302, 403, 403)),
    "console.issue_key_view": ("POST", "/console/agencies/{agency}/keys", {"key_type": "test"},
                               console(201, 403, 403)),
    "console.revoke_key_view": ("POST", "/console/agencies/{agency}/keys/gw_live_nosuch/revoke",
                                {}, console(404, 403, 403)),
    "console.services_enabled": ("POST", "/console/services/service/medicine_delivery/enabled",
                                 {"enabled": "true"}, console(302, 403, 403)),
    "console.services_save": ("POST", "/console/services/service/medicine_delivery", {},
                              console(302, 403, 403)),
    "console.services_rollback": ("POST",
                                  "/console/services/service/medicine_delivery/rollback",
                                  {"version": "0"}, console(302, 403, 403)),
    "console.set_budget": ("POST", "/console/agencies/{agency}/budgets",
                           {"service": "medicine_delivery", "period": "2026",
                            "limit": "1000000"}, console(302, 403, 403)),
    # {own} is not held: the decision is refused with a message on the request's page
    # the owner's manager decides on its agency's requests; another agency's staff may not
    "console.release_held_request": ("POST", "/console/requests/{own}/release", {},
                                     console(302, 403, 403, manager=302)),
    "console.refuse_held_request": ("POST", "/console/requests/{own}/refuse", {},
                                    console(302, 403, 403, manager=302)),
    "console.queue_job_retry": ("POST", "/console/queues/dispatch/failed/nosuchjob/retry", {},
                                console(302, 403, 403)),
    "console.queue_job_discard": ("POST", "/console/queues/dispatch/failed/nosuchjob/discard",
                                  {}, console(302, 403, 403)),
}


@pytest.fixture
def callers(app):
    gateway = app.extensions["gateway"]
    owner, live = create_agency(gateway, "Owner", ["medicine_delivery"], actor="test")
    test = issue_key(gateway, "Owner", "test", actor="test")
    _stranger, stranger = create_agency(gateway, "Stranger", ["medicine_delivery"], actor="test")
    _fleet, fleet = create_agency(gateway, "Fleet office", [], roles=["fleet_dispatch"],
                                  actor="test")
    revoked = issue_key(gateway, "Owner", "live", actor="test")
    revoke_key(gateway, "_".join(revoked.split("_")[:3]), actor="test")
    keys = {"malformed": "Bearer not-a-key", "revoked": revoked, "stranger": stranger,
            "owner_test": test, "owner_live": live, "fleet": fleet}
    headers = {name: ({} if name == "nobody" else
                      {"Authorization": value} if name == "malformed" else bearer(value))
               for name, value in [("nobody", None), *keys.items()]}
    agencies = {"owner": owner.id, "stranger": _stranger.id}
    accounts = {role: sign_in(app, role) for role in GATEWAY_STAFF}
    for caller, (role, agency) in AGENCY_ACCOUNTS.items():
        accounts[caller] = sign_in(app, role, agency=agencies[agency], key_type="test")
    upload = uploads.start(gateway, acting_agency(gateway, owner.id, "test", "console:test"),
                           uploaded_by="test", service="medicine_delivery",
                           file_name="rows.csv", file_kind="csv",
                           rows=[{"row": 3, "body": MEDICINE_BODY}], ignored_columns=[])
    return {"headers": headers, "agency": owner.id, "console": accounts, "upload": upload}


def _answer(response):
    location = response.headers.get("Location", "")
    if response.status_code == 302 and location.startswith("/console/sign-in"):
        return "login"
    return response.status_code


def test_every_route_has_a_row(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == set(ROWS), "add a row to ROWS for each new route"


@pytest.mark.parametrize("endpoint", sorted(ROWS))
def test_each_caller_gets_what_the_matrix_says(app, callers, endpoint):
    method, template, body, expected = ROWS[endpoint]
    client = app.test_client()
    owner = callers["headers"]["owner_test"]
    seen = {}

    def new_request(name: str) -> str:
        return client.post("/api/v1/services/medicine_delivery/requests",
                           json={**MEDICINE_BODY, "prescription_id": f"RX-{name}"},
                           headers=owner).get_json()["id"]

    # A route that reads {own} needs one request of the owner; one that acts on it (a cancel,
    # a release) a fresh one for each caller, so that no caller finds it already acted upon.
    acts_on_own = "{own}" in template and method == "POST"
    own = new_request("shared") if "{own}" in template and not acts_on_own else None
    for caller in CALLERS:
        if acts_on_own:
            own = new_request(caller)
        path = template.format(own=own, agency=callers["agency"], upload=callers["upload"])
        payload = {**MEDICINE_BODY, "prescription_id": f"RX-new-{caller}"} \
            if body == "medicine" else body
        if endpoint.startswith("console."):
            if caller in CONSOLE_CALLERS:
                user = callers["console"][caller]
                form = {k: v.format(caller=caller) for k, v in (body or {}).items()}
                response = user.post(path, form) if method == "POST" else user.client.get(path)
            else:
                response = client.open(path, method=method, data=body or None,
                                       headers=callers["headers"][caller])
        elif caller in CONSOLE_CALLERS:   # the console cookie goes along, and opens nothing
            response = callers["console"][caller].client.open(path, method=method,
                                                               json=payload)
        else:
            response = client.open(path, method=method, json=payload,
                                   headers=callers["headers"][caller])
        seen[caller] = _answer(response)
        response.close()
    drain(app)
    assert seen == expected
