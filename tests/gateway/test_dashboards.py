"""The reports page's figures in the core (``gateway.dashboards``): the period asked for made
sane in the region's days, percentiles as the statistics module computes them, outcomes, and
a purged request that has no point any more."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime

from gateway import dashboards
from gateway.console import charts
from gateway.models import ServiceRequest, utcnow
from gateway.region import Region
from gateway.statuses import Status
from tests.gateway.public.helpers import submit

WITA = Region.from_settings({"time_zone": "Asia/Makassar"})


def test_the_period_defaults_to_30_days_is_ordered_and_at_most_a_year():
    today = date(2026, 12, 3)
    assert dashboards.period(WITA, None, None, today) == (date(2026, 11, 4), today)
    assert dashboards.period(WITA, date(2026, 12, 1), date(2026, 11, 1), today) == \
        (date(2026, 11, 1), date(2026, 12, 1))
    first, last = dashboards.period(WITA, date(2000, 1, 1), today, today)
    assert (last - first).days == dashboards.MAX_DAYS - 1
    # the region's midnight: 00:00 WITA is 16:00 UTC the day before
    assert dashboards.bounds(WITA, date(2026, 3, 2), date(2026, 3, 2)) == (
        datetime(2026, 3, 1, 16, tzinfo=UTC), datetime(2026, 3, 2, 16, tzinfo=UTC))


def test_percentiles_and_outcomes():
    values = [40.0, 75.0, 130.0, 55.0, 200.0]
    assert dashboards.p95(values) == statistics.quantiles(values, n=20, method="inclusive")[18]
    assert dashboards.p95([7.0]) == 7.0 and dashboards.p95([]) is None
    assert dashboards.median([]) is None
    assert {dashboards.outcome_of(s) for s in Status} == set(dashboards.OUTCOMES)
    assert dashboards.outcome_of(Status.NO_DRIVER) == "failed"
    assert dashboards.outcome_of(Status.HELD_FOR_BUDGET) == "in_progress"


def test_a_purged_request_has_no_point(app):
    gateway = app.extensions["gateway"]
    made = submit(app)
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, made["id"])
        locate = dashboards.dropoff_locator(gateway)
        assert locate(record) == (-8.2192, 114.3691)
        record.status = str(Status.DELIVERED)
    now = utcnow()
    scope = dashboards.Scope(datetime(2000, 1, 1, tzinfo=UTC), now.replace(year=now.year + 1))
    with gateway.db.read() as session:
        assert dashboards.delivery_points(session, scope, locate) == [(-8.219, 114.369)]
    with gateway.db.write() as session:
        session.get(ServiceRequest, made["id"]).payload_ciphertext = None
    with gateway.db.read() as session:
        assert dashboards.delivery_points(session, scope, locate) == []


def test_charts_escape_every_text():
    drawn = str(charts.bars("<b>t</b>", [("<script>x</script>", 1, "<i>1</i>")], marker=1,
                            marker_label="<u>"))
    drawn += str(charts.stacked_columns("&", ["<d>"], [("<s>", "a\"b", [1])]))
    assert "<script>" not in drawn and "<b>" not in drawn and "<i>" not in drawn
    assert "<d>" not in drawn and "<s>" not in drawn and 'a"b' not in drawn
