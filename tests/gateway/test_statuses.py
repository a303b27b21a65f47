"""The lifecycle: statuses move forward only; late and duplicated events change nothing."""

from __future__ import annotations

import pytest

from gateway.models import ServiceRequest
from gateway.records import transition
from gateway.statuses import Status, moves_forward

CREATE = "/api/v1/services/medicine_delivery/requests"


@pytest.mark.parametrize("current, new, expected", [
    ("received", "dispatching", True), ("booked", "picked_up", True),
    ("picked_up", "driver_assigned", False), ("booked", "booked", False),
    ("delivered", "cancelled", False), ("cancelled", "delivered", False),
    ("picked_up", "failed", True)])
def test_moves_forward(current, new, expected):
    assert moves_forward(current, new) is expected


def test_every_status_has_a_rank_and_terminal_ones_rank_highest():
    terminal = [s for s in Status if s.terminal]
    assert terminal and all(s.rank == max(x.rank for x in Status) for s in terminal)


def test_a_late_event_lands_on_the_timeline_but_changes_nothing(agency, medicine_body, gateway):
    request_id = agency.post(CREATE, json=medicine_body).get_json()["id"]
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        assert transition(gateway, session, record, Status.PICKED_UP, source="courier:x")
        assert not transition(gateway, session, record, Status.DRIVER_ASSIGNED,
                              source="courier:x", raw_status="allocated")
        assert not transition(gateway, session, record, Status.PICKED_UP, source="courier:x")
    body = agency.get(f"/api/v1/requests/{request_id}").get_json()
    assert body["status"] == "picked_up"
    assert [(e["status"], e["applied"]) for e in body["timeline"]] == [
        ("received", True), ("picked_up", True), ("driver_assigned", False),
        ("picked_up", False)]
    assert body["timeline"][2]["raw_status"] == "allocated"
