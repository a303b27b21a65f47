"""The reports page: its figures equal those computed here from the requests' own times,
outcomes and prices; an agency's accounts see only their agency; each figure has a CSV; the
period is the region's days; the map's points are rounded and shown without tiles."""

from __future__ import annotations

import csv
import io
import re
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.models import Agency, ServiceRequest, StatusEvent, SurveyAnswer, utcnow
from gateway.statuses import Status
from tests.conftest import new_key
from tests.console.conftest import sign_in
from tests.console.test_agency_staff import staff
from tests.gateway.public.helpers import DISTINCTIVE, SECRET_WORDS, submit

_refs = iter(range(1, 100_000))


def make(app, key, created: datetime, status: Status, booked: float | None = None,
         delivered: float | None = None, failure_code: str | None = None,
         provider: str | None = None, final: int | None = None,
         at: tuple[float, float] = (-8.2192, 114.3691)) -> str:
    """A request of ``key``'s agency made through the API, then given known times (minutes
    after ``created`` it was booked and delivered), outcome and price in the database, as a
    courier's reports would have left them."""
    body = {**DISTINCTIVE, "prescription_id": f"RX-R-{next(_refs)}",
            "patient": {**DISTINCTIVE["patient"], "location": {"lat": at[0], "lng": at[1]}}}
    request_id = submit(app, body=body, key=key)["id"]
    naive = created.astimezone(UTC)
    with app.extensions["gateway"].db.write() as session:
        record = session.get(ServiceRequest, request_id)
        record.created_at = naive
        record.status = str(status)
        record.failure_code = failure_code
        record.provider = provider
        record.final_amount = final
        record.cost_currency = "IDR" if final is not None else None
        for event in session.query(StatusEvent).filter_by(request_id=request_id):
            event.created_at = naive
        for minutes, name in ((booked, Status.BOOKED), (delivered, Status.DELIVERED)):
            if minutes is not None:
                session.add(StatusEvent(request_id=request_id, status=str(name),
                                        source="courier:test", applied=True,
                                        created_at=naive + timedelta(minutes=minutes)))
    return request_id


def rows(response) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def p95(values):
    return values[0] if len(values) == 1 else \
        statistics.quantiles(values, n=20, method="inclusive")[18]


@pytest.fixture
def known(app):
    """Agency A's requests with known times, outcomes and prices; one of agency B's."""
    a, b = new_key(app, name="Puskesmas A"), new_key(app, name="Puskesmas B")
    now = utcnow().replace(tzinfo=UTC)
    day = now - timedelta(days=3)
    delivered = [  # (booked after, delivered after, provider, final price)
        (2, 40, "gosend_sandbox", 15000), (5, 75, "gosend_sandbox", 18000),
        (1, 130, "lalamove_sandbox", 22000), (3, 55, "lalamove_sandbox", 21001),
        (8, 200, "gosend_sandbox", None)]
    for i, (booked, done, provider, final) in enumerate(delivered):
        make(app, a, day + timedelta(minutes=i), Status.DELIVERED, booked, done,
             provider=provider, final=final, at=(-8.21924 + i * 0.01, 114.36911))
    make(app, a, day, Status.FAILED, 4, failure_code="no_driver_found")
    make(app, a, day - timedelta(days=1), Status.NO_DRIVER)
    make(app, a, day - timedelta(days=1), Status.CANCELLED)
    make(app, a, now - timedelta(minutes=1), Status.BOOKED, 1)
    make(app, b, day, Status.DELIVERED, 1, 10, provider="grab_sandbox", final=99999,
         at=(-8.30012, 114.30049))
    ids = {}
    with app.extensions["gateway"].db.read() as session:
        for agency in session.query(Agency).filter(Agency.name.in_(["Puskesmas A",
                                                                    "Puskesmas B"])):
            ids[agency.name[-1]] = agency.id
    return {"a": ids["A"], "b": ids["B"], "delivered": delivered, "day": day, "now": now}


def test_the_figures_equal_those_computed_from_the_requests(app, known):
    target = app.extensions["gateway"].service_settings("medicine_delivery")["target_minutes"]
    admin = sign_in(app, "auditor")
    query = f"?agency={known['a']}&service=medicine_delivery"
    page = admin.get("/console/reports" + query)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="total">9<' in html
    local_day = known["day"].astimezone(app.extensions["gateway"].region.time_zone).date()
    # per day by outcome (the days' table and its CSV)
    by_day = {r[0]: r[1:] for r in rows(admin.get("/console/reports/days.csv" + query))[1:]}
    assert len(by_day) == 30
    assert by_day[local_day.isoformat()][:4] == ["5", "1", "0", "0"]
    day_row = re.search(rf'id="day-{local_day.isoformat()}">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'class="delivered">5<', day_row) and re.search(r'class="failed">1<',
                                                                     day_row)
    # time to booking and delivery, within the target
    booking = [b for b, *_ in known["delivered"]] + [4, 1]
    delivery = [d for _, d, *_ in known["delivered"]]
    due = 5 + 2 + (1 if target is not None and target <= 1 else 0)   # delivered, failed
    within = sum(1 for d in delivery if target is not None and d <= target)
    header, *timing = rows(admin.get("/console/reports/timings.csv" + query))
    line = dict(zip(header, timing[0], strict=True))
    assert line["service"] == "medicine_delivery" and line["target_minutes"] == str(target)
    assert float(line["booking_median_minutes"]) == round(statistics.median(booking), 2)
    assert float(line["booking_p95_minutes"]) == round(p95(booking), 2)
    assert float(line["delivery_median_minutes"]) == round(statistics.median(delivery), 2)
    assert float(line["delivery_p95_minutes"]) == round(p95(delivery), 2)
    assert (line["due"], line["delivered_within_target"]) == (str(due), str(within))
    assert line["within_target_percent"] == str(round(100 * within / due))
    cell = re.search(r'id="timing-medicine_delivery">.*?class="delivery-p95">([^<]*)<', html,
                     re.S).group(1)
    assert cell == f"{p95(delivery):,.1f}"
    # failures by reason
    failures = rows(admin.get("/console/reports/failures.csv" + query))[1:]
    assert sorted(failures) == [["no_driver", "1"], ["no_driver_found", "1"]]
    # cost per delivery by provider: mean of the final prices reported (one is not)
    costs = {r[0]: r for r in rows(admin.get("/console/reports/costs.csv" + query))[1:]}
    assert costs["gosend_sandbox"][2:] == ["2", "16500", "33000"]
    assert costs["lalamove_sandbox"][2:] == ["2", "21501", "43001"]   # 21500.5 half up
    assert "grab_sandbox" not in costs                                 # B's
    assert re.search(r'id="cost-lalamove_sandbox">.*?class="mean">IDR21,501<', html, re.S)


def test_points_are_rounded_and_tell_nothing_else_and_show_without_tiles(app, known):
    admin = sign_in(app, "operator")
    html = admin.get(f"/console/reports?agency={known['a']}").get_data(as_text=True)
    points = rows(admin.get(f"/console/reports/points.csv?agency={known['a']}"))
    assert points[0] == ["lat", "lng"]
    assert sorted(points[1:]) == sorted([[f"{-8.219 + i * 0.01:.3f}".rstrip("0"), "114.369"]
                                         for i in range(5)])
    assert html.count('class="point"') == 5 and 'data-lat="-8.219" data-lng="114.369"' in html
    # no tile server configured: the map is there, blank, with the table of points
    assert 'data-tiles=""' in html and 'id="table-points"' in html
    assert "leaflet/leaflet.js" in html and "reports_map.js" in html
    for word in SECRET_WORDS:
        assert word not in html, word
    script = admin.get("/console/static/reports_map.js")
    assert script.status_code == 200
    script.close()


def test_agency_staff_see_their_agency_only_and_another_agency_is_a_404(app, known):
    a_staff = staff(app, known["a"], key_type="live")
    b_staff = staff(app, known["b"], key_type="live")
    mine = a_staff.get("/console/reports").get_data(as_text=True)
    assert 'id="total">9<' in mine and "Puskesmas A" in mine
    assert 'name="agency"' not in mine                   # nothing to widen the view with
    theirs = b_staff.get("/console/reports").get_data(as_text=True)
    assert 'id="total">1<' in theirs and "gosend_sandbox" not in theirs
    for path in (f"/console/reports?agency={known['a']}",
                 f"/console/reports/costs.csv?agency={known['a']}",
                 "/console/reports?agency=no-such-agency"):
        assert b_staff.get(path).status_code == 404, path
    costs = rows(b_staff.get("/console/reports/costs.csv"))
    assert [r[0] for r in costs[1:]] == ["grab_sandbox"]
    # A's staff in the test world: A's requests were made with a live key
    a_test = staff(app, known["a"], key_type="test")
    assert 'id="total">0<' in a_test.get("/console/reports").get_data(as_text=True)


def test_every_figure_has_a_csv_and_an_unknown_one_is_404(app, known):
    admin = sign_in(app, "admin")
    html = admin.get("/console/reports").get_data(as_text=True)
    for figure in ("days", "timings", "failures", "costs", "points"):
        assert f'id="csv-{figure}"' in html
        assert rows(admin.get(f"/console/reports/{figure}.csv"))[0]
    assert admin.get("/console/reports/secrets.csv").status_code == 404
    assert admin.get("/console/reports/..%2Fconfig.csv").status_code == 404


def test_the_survey_index_shows_when_there_are_answers(app, known):
    with app.extensions["gateway"].db.write() as session:
        request_id = session.query(ServiceRequest.id).filter_by(
            agency_id=known["a"], status="delivered").first()[0]
        session.add(SurveyAnswer(request_id=request_id, service="medicine_delivery",
                                 agency_id=known["a"], key_type="live", language="id",
                                 **{f"u{i}": 4 for i in range(1, 10)}, has_complaint=False))
    admin = sign_in(app, "auditor")
    html = admin.get(f"/console/reports?agency={known['a']}").get_data(as_text=True)
    assert 'id="ikm">100.00 (A)<' in html
    ikm, category, respondents, _complaints = rows(
        admin.get(f"/console/reports/survey.csv?agency={known['a']}"))[1]
    assert (float(ikm), category, respondents) == (100.0, "A", "1")
    other = admin.get(f"/console/reports?agency={known['b']}").get_data(as_text=True)
    assert 'id="survey-empty"' in other


@pytest.mark.parametrize("value", ["<script>alert(1)</script>", "x" * 5000, "2026-02-30",
                                   "'; DROP TABLE service_requests; --"])
def test_worst_filter_values_are_ignored_not_echoed(app, known, value):
    admin = sign_in(app, "admin")
    for name in ("from", "to", "service", "key_type"):
        page = admin.get("/console/reports", query_string={name: value})
        assert page.status_code == 200, name
        assert "<script>alert" not in page.get_data(as_text=True)
    assert admin.get("/console/reports", query_string={"agency": value}).status_code == 404


def test_the_period_is_the_regions_days(make_app):
    """16:30 UTC on 1 March is 23:30 WIB (1 March) but 00:30 WITA (2 March)."""
    moment = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
    for zone, day in (("Asia/Jakarta", "2026-03-01"), ("Asia/Makassar", "2026-03-02")):
        app = make_app(region={"name": "Kabupaten X", "time_zone": zone, "locale": "id",
                               "currency": "IDR"})
        key = new_key(app, name=f"Puskesmas {zone}")
        make(app, key, moment, Status.DELIVERED, 1, 20)
        with app.extensions["gateway"].db.read() as session:
            agency = session.scalar(select(Agency.id).where(Agency.name == f"Puskesmas {zone}"))
        admin = sign_in(app, "auditor")
        for asked, expected in ((day, "1"), ("2026-03-03", "0"), ("2026-02-28", "0")):
            page = admin.get(f"/console/reports?agency={agency}&from={asked}&to={asked}")
            assert f'id="total">{expected}<' in page.get_data(as_text=True), (zone, asked)
        by_day = rows(admin.get(f"/console/reports/days.csv?agency={agency}"
                                "&from=2026-03-01&to=2026-03-02"))
        assert {r[0]: r[-1] for r in by_day[1:]}[day] == "1", zone
