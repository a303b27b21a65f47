"""The reports page in a real headless Chromium, as agency staff, in Bahasa Indonesia: the
charts, their tables and the map of deliveries with no tile server (circles on a blank map);
another agency's staff see none of it."""

from __future__ import annotations

from datetime import UTC, timedelta

from playwright.sync_api import expect

from gateway.agencies import create_agency, issue_key
from gateway.models import utcnow
from gateway.statuses import Status
from tests.browser.conftest import screenshot, sign_in_as_staff, staff_of
from tests.console.test_reports import make


def test_agency_staff_see_their_reports_in_indonesian_and_others_see_none(
        make_app, serve_app, new_page):
    app = serve_app(make_app())
    url = app.server_url
    gateway = app.extensions["gateway"]
    sobo, _live = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"], actor="test")
    key = issue_key(gateway, sobo.id, "test", actor="test")
    other, _key = create_agency(gateway, "Puskesmas Lain", ["medicine_delivery"], actor="test")
    day = utcnow().replace(tzinfo=UTC) - timedelta(days=2)
    for i, minutes in enumerate((35, 50, 95)):
        make(app, key, day + timedelta(minutes=i), Status.DELIVERED, 2, minutes,
             provider="gosend_sandbox", final=15000 + i * 1000,
             at=(-8.2192 + i * 0.02, 114.3691))
    make(app, key, day, Status.FAILED, failure_code="no_driver_found")

    page = new_page(locale="id-ID")
    sign_in_as_staff(page, url, staff_of(app, sobo.id, "petugas-laporan"))
    page.get_by_role("link", name="Laporan", exact=True).click()
    page.wait_for_url(f"{url}/console/reports")
    expect(page.locator("h1")).to_contain_text("Laporan · Puskesmas Sobo")
    expect(page.locator("#total")).to_have_text("4")
    expect(page.locator("#figure-days h2")).to_have_text("Permintaan per hari menurut hasil")
    expect(page.locator("#figure-days svg.chart")).to_be_visible()
    expect(page.locator("#table-failures")).to_contain_text("no_driver_found")
    expect(page.locator("#table-costs .mean")).to_have_text("Rp16.000")
    # the map: Leaflet served by the gateway, no tiles, one circle per delivery point
    expect(page.locator("#delivery-map")).to_be_visible()
    expect(page.locator("#delivery-map path.leaflet-interactive")).to_have_count(3)
    expect(page.locator("#table-points tr.point")).to_have_count(3)
    # filter by period through the form (a GET form): a period with nothing
    page.fill('[name="from"]', "2020-01-01")
    page.fill('[name="to"]', "2020-01-31")
    page.get_by_role("button", name="Saring").click()
    expect(page.locator("#total")).to_have_text("0")
    page.goto(f"{url}/console/reports")
    screenshot(page, "reports-agency-desktop")

    stranger = new_page(locale="id-ID")
    sign_in_as_staff(stranger, url, staff_of(app, other.id, "petugas-lain"))
    stranger.goto(f"{url}/console/reports")
    expect(stranger.locator("#total")).to_have_text("0")
    expect(stranger.locator("#table-points tr.point")).to_have_count(0)
    answer = stranger.goto(f"{url}/console/reports?agency={sobo.id}")
    assert answer.status == 404
