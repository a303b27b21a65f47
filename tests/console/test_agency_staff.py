"""Agency staff in the console: an agency's own accounts see exactly what its key of the same
type sees, and an agency manager adds and removes its own staff, nobody else's."""

from __future__ import annotations

import pytest

from gateway.agencies import create_agency, issue_key
from gateway.console.users import create_admin
from gateway.models import AdminUser
from gateway.testing import ConsoleClient
from tests.conftest import MEDICINE_BODY, bearer
from tests.console.conftest import PASSWORD

_count = iter(range(1, 10_000))


def staff(app, agency_id: str, role: str = "agency_staff", key_type: str = "test",
          language: str = "en") -> ConsoleClient:
    username = f"{role.split('_')[1]}{next(_count)}"
    create_admin(app.extensions["gateway"], username, PASSWORD, role, language=language,
                 agency=agency_id, key_type=key_type)
    return ConsoleClient.sign_in(app, username, PASSWORD, role)


@pytest.fixture
def two_agencies(app):
    """Agencies A and B, each with a test key and one request made with it."""
    gateway = app.extensions["gateway"]
    out = {}
    for name in ("A", "B"):
        agency, live = create_agency(gateway, f"Puskesmas {name}", ["medicine_delivery"],
                                     actor="test")
        test = issue_key(gateway, agency.id, "test", actor="test")
        made = app.test_client().post(
            "/api/v1/services/medicine_delivery/requests",
            json={**MEDICINE_BODY, "prescription_id": f"RX-{name}-1"}, headers=bearer(test))
        assert made.status_code == 202
        out[name] = {"agency": agency.id, "test": test, "live": live,
                     "request": made.get_json()["id"], "reference": f"RX-{name}-1"}
    return out


def test_staff_of_a_sees_a_requests_only_in_list_detail_and_search(app, two_agencies):
    a, b = two_agencies["A"], two_agencies["B"]
    console = staff(app, a["agency"])
    page = console.get("/console/requests").get_data(as_text=True)
    assert f"request-{a['request']}" in page and f"request-{b['request']}" not in page
    assert 'name="agency"' not in page          # no agency filter to widen the view
    mine = console.get(f"/console/requests/{a['request']}")
    assert mine.status_code == 200
    assert "request.create" not in mine.get_data(as_text=True)   # no office audit trail
    theirs = console.get(f"/console/requests/{b['request']}")
    unknown = console.get("/console/requests/no-such-request")
    assert theirs.status_code == unknown.status_code == 404
    # the same page, but for the path echoed in the language form
    assert theirs.get_data(as_text=True).replace(b["request"], "ID") == \
        unknown.get_data(as_text=True).replace("no-such-request", "ID")
    # searching by B's reference or id, or asking for B's agency in the query: nothing
    for query in (f"reference={b['reference']}", f"reference={b['request']}",
                  f"agency={b['agency']}", f"agency={b['agency']}&key_type=test"):
        found = console.get(f"/console/requests?{query}").get_data(as_text=True)
        assert f"request-{b['request']}" not in found, query
    assert console.get("/console/dashboard").status_code == 403
    assert console.get("/console/agencies").status_code == 403
    assert console.get("/console/audit/export.csv").status_code == 403


def test_staff_of_b_sees_none_of_a_and_a_live_account_none_of_the_test_world(
        app, two_agencies):
    a, b = two_agencies["A"], two_agencies["B"]
    other = staff(app, b["agency"])
    page = other.get("/console/requests").get_data(as_text=True)
    assert f"request-{a['request']}" not in page and f"request-{b['request']}" in page
    assert other.get(f"/console/requests/{a['request']}").status_code == 404
    live = staff(app, a["agency"], key_type="live")
    page = live.get("/console/requests").get_data(as_text=True)
    assert f"request-{a['request']}" not in page
    assert live.get(f"/console/requests/{a['request']}").status_code == 404
    # ... exactly as A's live key sees it
    assert app.test_client().get(f"/api/v1/requests/{a['request']}",
                                 headers=bearer(a["live"])).status_code == 404


def test_staff_of_an_agency_made_inactive_is_signed_out(app, two_agencies):
    from gateway.agencies import update_agency

    a = two_agencies["A"]
    console = staff(app, a["agency"])
    assert console.get("/console/requests").status_code == 200
    update_agency(app.extensions["gateway"], a["agency"], services=["medicine_delivery"],
                  roles=[], callback_url=None, active=False, actor="test")
    gone = console.get("/console/requests")
    assert gone.status_code == 302 and "/console/sign-in" in gone.headers["Location"]


def _users(app, **where):
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        query = session.query(AdminUser).filter_by(**where)
        return {user.username: (user.role, user.active, user.key_type)
                for user in query.all()}


def test_manager_adds_and_removes_own_staff_in_its_own_world(app, two_agencies):
    a = two_agencies["A"]
    manager = staff(app, a["agency"], role="agency_manager")
    assert manager.get("/console/staff").headers["Location"].endswith(
        f"/console/agencies/{a['agency']}/staff")
    page = manager.get(f"/console/agencies/{a['agency']}/staff")
    assert page.status_code == 200
    made = manager.post(f"/console/agencies/{a['agency']}/staff",
                        {"username": "counter-desk", "password": PASSWORD,
                         "role": "agency_staff", "key_type": "test"})
    assert made.status_code == 201, made.get_data(as_text=True)[:400]
    assert _users(app, username="counter-desk") == {
        "counter-desk": ("agency_staff", True, "test")}
    new = ConsoleClient.sign_in(app, "counter-desk", PASSWORD)
    assert f"request-{a['request']}" in new.get("/console/requests").get_data(as_text=True)
    with app.extensions["gateway"].db.read() as session:
        user_id = session.query(AdminUser).filter_by(username="counter-desk").one().id
    removed = manager.post(f"/console/agencies/{a['agency']}/staff/{user_id}/remove")
    assert removed.status_code == 302
    assert _users(app, username="counter-desk")["counter-desk"][1] is False
    gone = new.get("/console/requests")         # the removed account's session stops
    assert gone.status_code == 302 and "/console/sign-in" in gone.headers["Location"]


def test_manager_cannot_raise_roles_touch_other_agencies_or_admins(app, two_agencies,
                                                                   console_as):
    a, b = two_agencies["A"], two_agencies["B"]
    manager = staff(app, a["agency"], role="agency_manager")
    other = staff(app, b["agency"])
    admin = console_as("admin")
    for form in ({"role": "agency_manager", "key_type": "test"},   # no new managers
                 {"role": "admin", "key_type": "test"},            # nor admins
                 {"role": "agency_staff", "key_type": "live"}):    # nor the live world
        refused = manager.post(f"/console/agencies/{a['agency']}/staff",
                               {"username": "climber", "password": PASSWORD, **form})
        assert refused.status_code == 403, form
    assert not _users(app, username="climber")
    # another agency's staff page, its accounts, and admins: 403
    assert manager.get(f"/console/agencies/{b['agency']}/staff").status_code == 403
    assert manager.post(f"/console/agencies/{b['agency']}/staff",
                        {"username": "intruder", "password": PASSWORD,
                         "role": "agency_staff", "key_type": "test"}).status_code == 403
    with app.extensions["gateway"].db.read() as session:
        ids = {user.username: user.id for user in session.query(AdminUser).all()}
    for target in (other.username, admin.username, manager.username):
        for agency in (a["agency"], b["agency"]):
            answer = manager.post(f"/console/agencies/{agency}/staff/{ids[target]}/remove")
            assert answer.status_code == 403, (target, agency)
    assert all(active for _role, active, _kt in _users(app).values())
    # staff (not managers) manage nobody
    assert other.get(f"/console/agencies/{b['agency']}/staff").status_code == 403
    assert other.get("/console/staff").status_code == 403


def test_admin_creates_a_manager_from_the_agency_page_and_forms_need_csrf(
        app, two_agencies, console_as):
    a = two_agencies["A"]
    admin = console_as("admin")
    assert f"/console/agencies/{a['agency']}/staff" in admin.get(
        f"/console/agencies/{a['agency']}").get_data(as_text=True)
    forged = admin.post(f"/console/agencies/{a['agency']}/staff",
                        {"username": "forged", "password": PASSWORD,
                         "role": "agency_manager", "key_type": "live"}, csrf=False)
    assert forged.status_code == 400 and not _users(app, username="forged")
    made = admin.post(f"/console/agencies/{a['agency']}/staff",
                      {"username": "kepala", "password": PASSWORD,
                       "role": "agency_manager", "key_type": "live"})
    assert made.status_code == 201
    assert _users(app, username="kepala") == {"kepala": ("agency_manager", True, "live")}
    short = admin.post(f"/console/agencies/{a['agency']}/staff",
                       {"username": "pendek", "password": "short",
                        "role": "agency_staff", "key_type": "live"})
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
