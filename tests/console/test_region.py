"""A regency in WIT: the console reads every time on Jayapura's clock and counts Jayapura's
day, while the API keeps speaking UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from gateway.models import AuditRecord, ServiceRequest, StatusEvent
from tests.console.page import by_id

MEDICINE = "/api/v1/services/medicine_delivery/requests"
JAYAPURA = {"name": "Kabupaten Jayapura", "time_zone": "Asia/Jayapura", "locale": "id",
            "currency": "IDR"}
#: midnight UTC: 09:00 WIT
MIDNIGHT_UTC = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def app(make_app):
    return make_app(region=JAYAPURA)


def _submit_at(app, agency, medicine_body, moment: datetime) -> str:
    response = agency.post(MEDICINE, json=medicine_body)
    assert response.status_code == 202, response.get_json()
    request_id = response.get_json()["id"]
    with app.extensions["gateway"].db.write() as session:
        session.execute(update(ServiceRequest).where(ServiceRequest.id == request_id)
                        .values(created_at=moment, updated_at=moment))
        session.execute(update(StatusEvent).where(StatusEvent.request_id == request_id)
                        .values(created_at=moment))
    return request_id


def test_the_request_page_shows_wit_times(app, agency, console_as, medicine_body):
    request_id = _submit_at(app, agency, medicine_body, MIDNIGHT_UTC)
    console = console_as("operator")

    page = console.get(f"/console/requests/{request_id}")
    listed = by_id(page, "request-facts")
    facts = dict(zip((e.text for e in listed.all("dt")), (e.text for e in listed.all("dd")),
                     strict=True))
    assert facts["Received"] == "01-03-2026 09:00:00 WIT"
    first_row = by_id(page, "timeline").rows()[0]
    assert first_row[0] == "01-03-2026 09:00:00 WIT"
    footer = page.get_data(as_text=True)
    assert "Kabupaten Jayapura" in footer and "Times are shown in WIT (Asia/Jayapura)." in footer
    assert "WIB" not in footer

    listing = console.get("/console/requests").get_data(as_text=True)
    assert "01-03-2026 09:00 WIT" in listing


def test_the_api_keeps_answering_utc_whatever_the_region(app, agency, medicine_body):
    request_id = _submit_at(app, agency, medicine_body, MIDNIGHT_UTC)

    record = agency.get(f"/api/v1/requests/{request_id}").get_json()
    assert record["created_at"] == "2026-03-01T00:00:00Z"
    assert [entry["at"] for entry in record["timeline"]] == ["2026-03-01T00:00:00Z"]
    listed = agency.get("/api/v1/requests").get_json()["requests"]
    assert [item["created_at"] for item in listed] == ["2026-03-01T00:00:00Z"]


def test_the_dashboard_counts_jayapuras_day(app, agency, console_as, medicine_body):
    """Jayapura's day starts at 15:00 UTC: a request at 15:30 UTC is today's there, one at
    14:59 UTC yesterday's, though both fall on one WIB day."""
    gateway = app.extensions["gateway"]
    start, _end = gateway.region.today()
    assert (start.hour, start.minute) == (15, 0)
    counted = _submit_at(app, agency, medicine_body, start + timedelta(minutes=30))
    with gateway.db.write() as session:
        template = session.scalars(select(ServiceRequest)).one()
        session.execute(insert(ServiceRequest), [{
            "agency_id": template.agency_id, "api_key_id": template.api_key_id,
            "service": "medicine_delivery", "key_type": template.key_type,
            "status": "received", "request_fingerprint": "x", "correlation_id": "yesterday",
            "created_at": start - timedelta(minutes=1),
            "updated_at": start - timedelta(minutes=1)}])

    page = console_as("auditor").get("/console/dashboard")
    assert by_id(page, "today-total").text.endswith("1")
    assert counted
    day = gateway.region.local(start).strftime("%d-%m-%Y")
    assert f"since {day} 00:00 WIT" in page.get_data(as_text=True)


def test_the_audit_search_reads_dates_as_wit_days(app, agency, console_as, medicine_body):
    """A record written at 16:30 UTC on 10 January is 01:30 WIT on the 11th."""
    console = console_as("admin")
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:
        session.execute(update(AuditRecord).values(recorded_at="2026-01-10T16:30:00.000000Z"))
    on_the_11th = console.get("/console/audit?date_from=2026-01-11&date_to=2026-01-11")
    on_the_10th = console.get("/console/audit?date_from=2026-01-10&date_to=2026-01-10")
    assert "11-01-2026 01:30:00 WIT" in on_the_11th.get_data(as_text=True)
    assert "01:30:00 WIT" not in on_the_10th.get_data(as_text=True)
    assert "From (date, WIT)" in on_the_11th.get_data(as_text=True)
