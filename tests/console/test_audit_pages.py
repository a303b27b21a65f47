"""The audit pages: search the trail, verify its chain, export what a search found."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select, text, update

from gateway.events import Event
from gateway.models import AuditRecord
from tests.console.conftest import sign_in
from tests.console.page import by_id, parse, untranslated


def record(gateway, action, actor="worker", target=None, outcome="ok", correlation_id=None,
           **details) -> int:
    with gateway.db.write() as session:
        gateway.track(session, Event(action, actor=actor, target=target, outcome=outcome,
                                     details=details, correlation_id=correlation_id))
    with gateway.db.read() as session:
        return session.scalar(select(AuditRecord.seq).order_by(AuditRecord.seq.desc()))


def shown(page) -> list[int]:
    """The record numbers the results table shows, top to bottom."""
    found = parse(page).find("audit-records")
    if found is None:
        return []
    return [int(row.attrs["id"].removeprefix("audit-")) for row in found.all("tr")
            if row.attrs.get("id", "").startswith("audit-")]


@pytest.fixture
def trail(gateway):
    """A small trail of provider calls and job outcomes, by record number."""
    return {
        "ok_call": record(gateway, "courier.call", "gateway", "courier:gosend_sandbox",
                          correlation_id="corr-aaa", operation="book"),
        "failed_call": record(gateway, "courier.call", "gateway", "courier:gosend_sandbox",
                              "temporary", "corr-bbb", operation="book"),
        "grab_call": record(gateway, "courier.call", "gateway", "courier:grab_sandbox",
                            correlation_id="corr-bbb", operation="quote"),
        "booking": record(gateway, "courier.book", "worker", "request:r-1", "booked",
                          "corr-aaa"),
        "job": record(gateway, "job.dispatch", "worker", "request:r-1", "failed", "corr-aaa"),
    }


@pytest.mark.parametrize("query, expected", [
    ("action=courier.call", ["grab_call", "failed_call", "ok_call"]),
    ("action=courier.*", ["booking", "grab_call", "failed_call", "ok_call"]),
    ("action=courier.call&target=courier:gosend_sandbox", ["failed_call", "ok_call"]),
    ("target=courier:*&outcome=temporary", ["failed_call"]),
    ("correlation_id=corr-aaa", ["job", "booking", "ok_call"]),
    ("actor=worker&target=request:r-1", ["job", "booking"]),
    ("outcome=failed&correlation_id=corr-aaa", ["job"]),
    ("action=courier", []),
])
def test_an_audit_search_finds_exactly_the_matching_records_newest_first(
        app, trail, query, expected):
    page = sign_in(app, "auditor").get(f"/console/audit?{query}")
    assert page.status_code == 200
    assert shown(page) == [trail[name] for name in expected]
    if not expected:
        assert by_id(page, "audit-none").text == "No record matches this search."


def test_a_date_range_is_whole_days_in_wib(app, gateway):
    late_on_the_10th = [record(gateway, "test.step", target=f"thing:{i}") for i in range(3)]
    early_on_the_11th = [record(gateway, "test.step", target=f"thing:{i}") for i in range(3, 6)]
    # 23:30 WIB on 10 January is 16:30 UTC; 00:30 WIB on the 11th is still the 10th in UTC.
    with gateway.db.write() as session:
        for seq in late_on_the_10th:
            session.execute(update(AuditRecord).where(AuditRecord.seq == seq)
                            .values(recorded_at=f"2026-01-10T16:30:0{seq % 10}.000000Z"))
        for seq in early_on_the_11th:
            session.execute(update(AuditRecord).where(AuditRecord.seq == seq)
                            .values(recorded_at=f"2026-01-10T17:30:0{seq % 10}.000000Z"))
    console = sign_in(app, "auditor")
    eleventh = console.get("/console/audit?date_from=2026-01-11&date_to=2026-01-11")
    assert shown(eleventh) == early_on_the_11th[::-1]
    tenth = console.get("/console/audit?date_to=2026-01-10")
    assert shown(tenth) == late_on_the_10th[::-1]
    both = console.get("/console/audit?date_from=2026-01-10&date_to=2026-01-11&target=thing:4")
    assert shown(both) == [early_on_the_11th[1]]
    since = console.get("/console/audit?date_from=2026-01-11&action=test.step")
    assert shown(since) == early_on_the_11th[::-1]


def test_an_unreadable_date_is_said_and_ignored(app, trail):
    page = sign_in(app, "auditor").get("/console/audit?date_from=yesterday&action=job.dispatch")
    assert page.status_code == 200
    assert by_id(page, "filter-date_from-error").text == "Not a date (YYYY-MM-DD)."
    assert shown(page) == [trail["job"]]


def test_records_are_paged_by_number_newest_first(app, gateway):
    steps = [record(gateway, "test.step", target=f"thing:{i}") for i in range(120)]
    console = sign_in(app, "auditor")
    first = console.get("/console/audit?action=test.step")
    assert shown(first) == steps[::-1][:50]
    assert parse(first).find("audit-newer") is None
    second = console.get(by_id(first, "audit-older").attrs["href"])
    assert shown(second) == steps[::-1][50:100]
    third = console.get(by_id(second, "audit-older").attrs["href"])
    assert shown(third) == steps[::-1][100:]
    assert parse(third).find("audit-older") is None
    back = console.get(by_id(third, "audit-newer").attrs["href"])
    assert shown(back) == steps[::-1][50:100]
    assert "action=test.step" in by_id(back, "audit-newer").attrs["href"]


def test_verify_says_intact_then_names_the_first_record_edited_in_the_database(app, trail):
    console = sign_in(app, "auditor")
    console.get("/console/audit")
    intact = by_id(console.post("/console/audit/verify"), "verify-result")
    assert intact.attrs["data-ok"] == "true"
    assert intact.text.startswith("The chain is intact:")
    with app.extensions["gateway"].db.write() as session:
        session.execute(text("UPDATE audit_records SET outcome = 'ok' WHERE seq = :seq"),
                        {"seq": trail["failed_call"]})
    page = console.post("/console/audit/verify")
    broken = by_id(page, "verify-result")
    assert broken.attrs["data-first-bad"] == str(trail["failed_call"])
    assert f"broken at record {trail['failed_call']}: content does not match its hash" \
        in broken.text
    # The checks themselves are on the record, with what they found.
    checks = sign_in(app, "admin").get("/console/audit?action=console.audit_verify")
    outcomes = [row[5] for row in by_id(checks, "audit-records").rows()]
    assert outcomes == ["broken", "intact"]


def test_verifying_needs_the_forms_csrf_token(app, trail):
    console = sign_in(app, "auditor")
    assert console.post("/console/audit/verify", csrf=False).status_code == 400


def test_exports_hold_the_filtered_records_and_each_export_is_audited(app, trail):
    console = sign_in(app, "auditor")
    page = console.get("/console/audit?action=courier.call&correlation_id=corr-bbb")
    csv_link = by_id(page, "export-csv").attrs["href"]
    response = console.get(csv_link)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(row["seq"]) for row in rows] == [trail["failed_call"], trail["grab_call"]]
    assert json.loads(rows[0]["details"]) == {"operation": "book"}
    assert rows[0]["outcome"] == "temporary" and len(rows[0]["hash"]) == 64

    lines = console.get(by_id(page, "export-jsonl").attrs["href"]).get_data(as_text=True)
    exported = [json.loads(line) for line in lines.splitlines()]
    assert [item["seq"] for item in exported] == [trail["failed_call"], trail["grab_call"]]
    assert exported[1]["target"] == "courier:grab_sandbox"
    assert exported[1]["details"] == {"operation": "quote"}

    audited = console.get("/console/audit?action=console.audit_export")
    rows = by_id(audited, "audit-records").rows()
    assert [row[2] for row in rows] == [f"admin:{console.username}"] * 2
    details = [json.loads(row[7]) for row in rows]
    assert [d["format"] for d in details] == ["jsonl", "csv"]
    assert details[0]["filter"] == {"action": "courier.call", "correlation_id": "corr-bbb"}


def test_an_exported_cell_is_never_a_spreadsheet_formula(app, gateway):
    record(gateway, "test.step", target='=HYPERLINK("http://example.invalid")')
    exported = sign_in(app, "auditor").get("/console/audit/export.csv?action=test.step")
    (row,) = csv.DictReader(io.StringIO(exported.get_data(as_text=True)))
    assert row["target"] == "'=HYPERLINK(\"http://example.invalid\")"


@pytest.mark.parametrize("role", ["auditor", "operator", "admin"])
def test_every_role_may_search_verify_and_export(app, trail, role):
    console = sign_in(app, role)
    assert console.get("/console/audit?action=courier.*").status_code == 200
    assert console.post("/console/audit/verify").status_code == 200
    assert console.get("/console/audit/export.jsonl").status_code == 200
    assert console.get("/console/audit/export.csv").status_code == 200


def test_the_audit_page_speaks_indonesian(app, trail):
    console = sign_in(app, "auditor")
    console.post("/console/language", {"language": "id", "next": "/console/audit"})
    page = console.post("/console/audit/verify")
    assert by_id(page, "verify-result").text.startswith("Rantai utuh:")
    assert untranslated(page) == []
