"""The dispatch board and the agency pages, driven through their forms."""

from __future__ import annotations

import re

from gateway.testing import wait_for_status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"


def _booked_on_the_fleet(make_app, medicine_body):
    app = make_app(couriers={"gosend_sandbox": {"enabled": False}, "own_fleet": {}},
                   services={"medicine_delivery": {"couriers": ["own_fleet"]}})
    pharmacy = new_key(app, key_type="test")
    created = app.test_client().post(CREATE, json=medicine_body,
                                      headers=bearer(pharmacy)).get_json()
    wait_for_status(app, created["id"], "booked")
    return app, pharmacy, created


def _job_id(page: str) -> str:
    return re.search(r'id="job-([0-9a-f-]{36})"', page).group(1)


def test_an_operator_takes_a_booking_to_the_door_from_the_board(make_app, medicine_body,
                                                                console_as):
    app, pharmacy, created = _booked_on_the_fleet(make_app, medicine_body)
    operator = console_as("operator")
    board = operator.get("/console/fleet").get_data(as_text=True)
    assert "Siti Aminah" in board and "3510011203650002" not in board
    job = _job_id(board)
    refused = operator.post(f"/console/fleet/{job}/accept", {"staff_name": ""},
                            follow_redirects=True)
    assert "Name the staff courier" in refused.get_data(as_text=True)
    operator.post(f"/console/fleet/{job}/accept", {"staff_name": "Bu Ratna"})
    wait_for_status(app, created["id"], "driver_assigned")
    operator.post(f"/console/fleet/{job}/pickup")
    wait_for_status(app, created["id"], "picked_up")
    wrong = operator.post(f"/console/fleet/{job}/deliver", {"pin": "000000"},
                          follow_redirects=True)
    assert "PIN is missing or wrong" in wrong.get_data(as_text=True)
    operator.post(f"/console/fleet/{job}/deliver", {"pin": created["delivery_pin"]})
    wait_for_status(app, created["id"], "delivered")
    body = app.test_client().get(f"/api/v1/requests/{created['id']}",
                                 headers=bearer(pharmacy)).get_json()
    assert body["proof"]["pin_verified"] is True
    assert body["proof"]["delivered_by"] == "Bu Ratna"


def test_an_auditor_sees_the_board_masked_and_without_controls(make_app, medicine_body,
                                                               console_as):
    app, _pharmacy, created = _booked_on_the_fleet(make_app, medicine_body)
    auditor = console_as("auditor")
    board = auditor.get("/console/fleet").get_data(as_text=True)
    assert "Siti Aminah" not in board and 'name="staff_name"' not in board
    job = _job_id(board)
    assert auditor.post(f"/console/fleet/{job}/accept", {"staff_name": "x"}).status_code == 403


def test_an_admin_creates_an_agency_whose_key_works_once_shown(app, console_as):
    admin = console_as("admin")
    page = admin.post("/console/agencies", {
        "name": "Puskesmas Rogojampi", "services": ["medicine_delivery"], "key_type": "live",
        "callback_url": "https://rogojampi.example/callbacks"})
    assert page.status_code == 201
    html = page.get_data(as_text=True)
    key = re.search(r'id="new-key">([^<]+)<', html).group(1)
    assert re.search(r'id="callback-secret">[0-9a-f]{64}<', html)
    assert app.test_client().get("/api/v1/services", headers=bearer(key)).status_code == 200
    listing = admin.get("/console/agencies").get_data(as_text=True)
    assert "Puskesmas Rogojampi" in listing and key not in listing
    duplicate = admin.post("/console/agencies", {"name": "Puskesmas Rogojampi",
                                                 "services": ["medicine_delivery"]})
    assert duplicate.status_code == 422 and "already exists" in duplicate.get_data(as_text=True)


def test_an_admin_issues_and_revokes_keys_and_changes_services(app, console_as):
    admin = console_as("admin")
    admin.post("/console/agencies", {"name": "Dinas Koperasi", "services": ["umkm_pickup"]})
    listing = admin.get("/console/agencies").get_data(as_text=True)
    agency_id = re.search(r'/console/agencies/([0-9a-f-]{36})">Dinas Koperasi', listing).group(1)
    issued = admin.post(f"/console/agencies/{agency_id}/keys", {"key_type": "test"})
    key = re.search(r'id="new-key">([^<]+)<', issued.get_data(as_text=True)).group(1)
    assert key.startswith("gw_test_")
    client = app.test_client()
    assert client.get("/api/v1/services", headers=bearer(key)).status_code == 200
    prefix = "_".join(key.split("_")[:3])
    admin.post(f"/console/agencies/{agency_id}/keys/{prefix}/revoke")
    assert client.get("/api/v1/services", headers=bearer(key)).status_code == 401

    other = admin.post(f"/console/agencies/{agency_id}/keys", {"key_type": "live"})
    live = re.search(r'id="new-key">([^<]+)<', other.get_data(as_text=True)).group(1)
    admin.post(f"/console/agencies/{agency_id}",
               {"services": ["umkm_pickup", "tourism_transport"], "active": "on"})
    services = client.get("/api/v1/services", headers=bearer(live)).get_json()["services"]
    assert {s["name"] for s in services} >= {"umkm_pickup", "tourism_transport"}


def test_an_operator_cannot_manage_agencies(app, console_as):
    operator = console_as("operator")
    page = operator.get("/console/agencies").get_data(as_text=True)
    assert 'id="create-agency"' not in page
    response = operator.post("/console/agencies", {"name": "Sneaky", "services": []})
    assert response.status_code == 403
    assert "Sneaky" not in console_as("admin").get("/console/agencies").get_data(as_text=True)


def _fleet_reads(app) -> list:
    from sqlalchemy import select

    from gateway.models import AuditRecord

    with app.extensions["gateway"].db.read() as session:
        return list(session.scalars(select(AuditRecord).where(
            AuditRecord.action == "fleet.personal_data.read").order_by(AuditRecord.seq)))


def test_every_look_at_names_and_addresses_on_the_board_is_audited(make_app, medicine_body,
                                                                    console_as):
    """The observation: an operator opens the board, reads a patient's name, phone and
    address, and the audit trail must say who read which requests' personal data, as it
    does for the request page. An auditor's masked board reads none."""
    app, _pharmacy, created = _booked_on_the_fleet(make_app, medicine_body)
    operator = console_as("operator", "ketut")
    for _ in range(2):
        assert "Siti Aminah" in operator.get("/console/fleet").get_data(as_text=True)
    console_as("auditor").get("/console/fleet")
    reads = _fleet_reads(app)
    assert [r.actor for r in reads] == ["admin:ketut", "admin:ketut"]
    assert [r.details["requests"] for r in reads] == [[created["id"]], [created["id"]]]
