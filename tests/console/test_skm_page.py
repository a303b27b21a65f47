"""The console's SKM page and exports: the IKM from citizens' answers given on the public
survey, per service and agency, and CSV files that a spreadsheet cannot be tricked by."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from gateway.models import AuditRecord
from gateway.statuses import Status
from tests.conftest import new_key
from tests.gateway.public.helpers import move, submit, token_of


def answer(app, scores, comment="", complaint="", key=None, reference="RX-1"):
    """A delivered request of ``key``'s agency, answered through the public survey."""
    from tests.gateway.public.helpers import DISTINCTIVE

    made = submit(app, body={**DISTINCTIVE, "prescription_id": reference}, key=key)
    move(app, made["id"], Status.BOOKED, Status.DELIVERED)
    client = app.test_client()
    token = token_of(made)
    html = client.get(f"/s/{token}").get_data(as_text=True)
    signed = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    data = {f"u{i}": str(s) for i, s in enumerate(scores, start=1)}
    response = client.post(f"/s/{token}", data={**data, "form_token": signed,
                                                 "comment": comment, "complaint": complaint})
    assert response.status_code == 201
    return made


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_the_page_shows_the_ikm_category_respondents_and_element_means(app, console_as):
    key = new_key(app, name="Puskesmas Sobo")
    answer(app, [4, 3, 3, 4, 4, 3, 3, 2, 3], key=key, reference="RX-1")
    answer(app, [3, 3, 2, 4, 4, 3, 4, 2, 3], key=key, reference="RX-2")
    answer(app, [3, 3, 3, 4, 3, 3, 3, 3, 3], key=key, reference="RX-3")
    page = console_as("auditor").get("/console/skm")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # by hand: 85/27 x 25 = 78.70, category B (see tests/gateway/test_skm.py)
    assert re.search(r'id="ikm">78\.70<', html), html[html.find('id="ikm"') - 10:][:60]
    assert 'id="category">B (Good)' in html
    assert 'id="respondents">3<' in html
    assert re.search(r'id="element-u8">.*?2\.333', html, re.S)
    assert "Puskesmas Sobo" in html
    # a period without answers
    empty = console_as("auditor").get("/console/skm?since=2000-01-01&until=2000-01-31")
    assert 'id="skm-empty"' in empty.get_data(as_text=True)


def test_the_page_filters_by_agency(app, console_as):
    one, other = new_key(app, name="Puskesmas A"), new_key(app, name="Puskesmas B")
    answer(app, [4] * 9, key=one, reference="RX-A")
    answer(app, [1] * 9, key=other, reference="RX-B")
    admin = console_as("admin")
    both = admin.get("/console/skm").get_data(as_text=True)
    assert 'id="ikm">62.50<' in both and 'id="respondents">2<' in both
    from gateway.models import Agency

    with app.extensions["gateway"].db.read() as session:
        agency_id = session.scalar(select(Agency.id).where(Agency.name == "Puskesmas A"))
    only = admin.get(f"/console/skm?agency={agency_id}").get_data(as_text=True)
    assert 'id="ikm">100.00<' in only and 'id="category">A' in only


def test_the_exports_neutralise_formulas_and_carry_the_complaints(app, console_as):
    answer(app, [4] * 9, comment='=HYPERLINK("http://evil.example","klik")',
           complaint="@SUM(1+1) obat tidak lengkap", reference="RX-9")
    operator = console_as("operator")
    answers = operator.get("/console/skm/answers.csv")
    assert answers.status_code == 200 and answers.mimetype == "text/csv"
    header, line = rows(answers)
    assert header[6:15] == [f"u{i}" for i in range(1, 10)]
    assert line[header.index("comment")] == '\'=HYPERLINK("http://evil.example","klik")'
    assert line[header.index("u1")] == "4"
    complaints = rows(operator.get("/console/skm/complaints.csv"))
    assert complaints[1][-1] == "'@SUM(1+1) obat tidak lengkap"
    with app.extensions["gateway"].db.read() as session:
        kinds = [r.details["kind"] for r in session.scalars(select(AuditRecord).where(
            AuditRecord.action == "console.skm_export"))]
    assert kinds == ["answers", "complaints"]


def test_an_auditor_sees_the_figures_but_cannot_export_the_citizens_text(app, console_as):
    auditor = console_as("auditor")
    html = auditor.get("/console/skm").get_data(as_text=True)
    assert "answers.csv" not in html
    assert auditor.get("/console/skm/answers.csv").status_code == 403
    assert auditor.get("/console/skm/complaints.csv").status_code == 403


def test_periods_follow_the_regions_calendar():
    from datetime import date

    from gateway.console.views.skm import periods

    found = {label: (first, last) for label, first, last in periods(date(2026, 12, 3))}
    assert found["This month"] == (date(2026, 12, 1), date(2026, 12, 31))
    assert found["This semester"] == (date(2026, 7, 1), date(2026, 12, 31))
    assert found["Last year"] == (date(2025, 1, 1), date(2025, 12, 31))
    assert periods(date(2026, 2, 10))[0][2] == date(2026, 2, 28)
    assert periods(date(2026, 2, 10))[1][1:] == (date(2026, 1, 1), date(2026, 6, 30))
