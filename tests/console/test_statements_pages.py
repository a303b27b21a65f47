"""Monthly statements in the console: deliveries made through the GO-SEND simulator over real
HTTP, their total checked against the prices the simulator reported, the month on the
region's clock, reconciling with an invoice file, and who may see what."""

from __future__ import annotations

import copy
import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from gateway import statements
from gateway.agencies import create_agency, issue_key
from gateway.models import ProviderEventRecord, ServiceRequest, StatusEvent, utcnow
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import wait_for_status
from tests.conftest import MEDICINE_BODY, bearer
from tests.console.conftest import sign_in

MEDICINE = "/api/v1/services/medicine_delivery/requests"
#: drop-offs at different distances from the puskesmas, so each delivery has its own price
DROP_OFFS = ((-8.2192, 114.3691), (-8.2300, 114.3800), (-8.2450, 114.3500))


@pytest.fixture
def priced(make_app, gateway_gosend, serve_app):
    """An app whose medicine requests go to the GO-SEND simulator, served over HTTP for its
    webhooks (they carry the price GO-SEND charges)."""

    def make(**overrides):
        app = make_app(
            couriers={"gosend_sandbox": {"base_url": gateway_gosend.url, "timeout_seconds": 2,
                                         **GOSEND_TEST_CREDENTIALS}},
            services={"medicine_delivery": {"couriers": ["gosend_sandbox"]}}, **overrides)
        return serve_app(app, gateway_gosend, "gosend_sandbox")

    return make


def medicine(number: int, where) -> dict:
    body = copy.deepcopy(MEDICINE_BODY)
    body["prescription_id"] = f"RX-ST-{number}"
    body["patient"]["location"] = {"lat": where[0], "lng": where[1]}
    return body


def submit(app, key, body) -> str:
    response = app.test_client().post(MEDICINE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def reported_prices(sim, request_ids) -> dict[str, int]:
    """What the simulator charged: the price on its delivered webhook, by its order number,
    for the bookings made for ``request_ids`` (independently of what the gateway stored)."""
    ours = {number for number, booking in sim.bookings.items()      # "<request id>-<attempt>"
            if booking["reference"].rsplit("-", 1)[0] in request_ids}
    return {w["body"]["booking_id"]: round(w["body"]["price"]) for w in sim.webhooks
            if w["body"]["status"] == "delivered" and w["body"]["booking_id"] in ours}


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


@pytest.fixture
def delivered(priced, gateway_gosend):
    """Three live deliveries and one test-world delivery of agency A, all delivered; B is
    another agency."""
    app = priced()
    gateway = app.extensions["gateway"]
    agency, live = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"], actor="test")
    test = issue_key(gateway, agency.id, "test", actor="test")
    other, _ = create_agency(gateway, "Puskesmas Giri", ["medicine_delivery"], actor="test")
    ids = [submit(app, live, medicine(n, where)) for n, where in enumerate(DROP_OFFS)]
    test_id = submit(app, test, medicine(9, DROP_OFFS[0]))
    for request_id in [*ids, test_id]:
        wait_for_status(app, request_id, "delivered")
    prices = reported_prices(gateway_gosend, set(ids))
    assert len(prices) == 3 and len(set(prices.values())) == 3
    month = statements.month_of(gateway.region, utcnow())
    return {"app": app, "agency": agency.id, "other": other.id, "ids": ids, "test_id": test_id,
            "prices": prices, "month": month,
            "path": f"/console/agencies/{agency.id}/statements?service=medicine_delivery"
                    f"&month={month}"}


def test_the_statement_total_is_the_sum_of_the_prices_the_simulator_reported(delivered):
    app, prices = delivered["app"], delivered["prices"]
    admin = sign_in(app, "admin")
    page = admin.get(delivered["path"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'data-amount="{sum(prices.values())}"' in html
    assert "Puskesmas Sobo" in html and delivered["month"] in html
    assert 'id="statement-signatures"' in html
    for request_id in delivered["ids"]:
        assert f"line-{request_id}" in html
    assert delivered["test_id"] not in html          # the test world is never on a statement
    for order_id in prices:
        assert order_id in html

    rows = csv_rows(admin.get(delivered["path"].replace("statements?", "statements.csv?")))
    assert rows[0] == list(statements.STATEMENT_HEADER)
    lines = [r for r in rows[1:] if r[0] != "total"]
    assert sorted(r[2] for r in lines) == sorted(delivered["ids"])
    assert {r[4]: int(r[6]) for r in lines} == prices
    assert all(r[3] == "gosend_sandbox" and r[8] == "delivered" and r[9] == "false"
               for r in lines)
    overall = rows[-1]
    assert overall[0] == "total" and int(overall[6]) == sum(prices.values())
    assert all(r[1].startswith("RX-ST-") for r in lines)


def test_a_delivery_at_2330_wib_on_the_31st_is_that_months_and_a_wita_region_moves_it(
        delivered, make_app):
    app, request_id = delivered["app"], delivered["ids"][0]
    gateway = app.extensions["gateway"]
    handed_over = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)     # 23:30 WIB, 00:30 WITA
    with gateway.db.write() as session:
        session.execute(update(ServiceRequest).where(ServiceRequest.id == request_id)
                        .values(created_at=datetime(2026, 3, 31, 9, tzinfo=UTC),
                                delivered_at=handed_over))
        session.execute(update(ProviderEventRecord)
                        .where(ProviderEventRecord.request_id == request_id,
                               ProviderEventRecord.status == "delivered")
                        .values(occurred_at=handed_over))
        session.execute(update(StatusEvent)
                        .where(StatusEvent.request_id == request_id,
                               StatusEvent.status == "delivered")
                        .values(created_at=handed_over))

    def months(gw):
        return {month: [line.request_id for line in statements.statement(
                    gw, delivered["agency"], "medicine_delivery", month).lines]
                for month in ("2026-03", "2026-04")}

    assert months(gateway) == {"2026-03": [request_id], "2026-04": []}
    wita = make_app(region={"name": "Kabupaten Badung", "time_zone": "Asia/Makassar",
                            "locale": "id", "currency": "IDR"})
    assert months(wita.extensions["gateway"]) == {"2026-03": [], "2026-04": [request_id]}
    # the page dates it on the region's clock too
    page = sign_in(app, "auditor").get(
        f"/console/agencies/{delivered['agency']}/statements?service=medicine_delivery"
        "&month=2026-03").get_data(as_text=True)
    assert "31-03-2026 23:30 WIB" in page

    # a delivery whose provider reported no price is flagged, on the page and in the file
    unpriced = delivered["ids"][1]
    with gateway.db.write() as session:
        session.execute(update(ServiceRequest).where(ServiceRequest.id == unpriced)
                        .values(final_amount=None))
    admin = sign_in(app, "admin")
    page = admin.get(delivered["path"]).get_data(as_text=True)
    assert 'id="statement-unpriced"' in page and "1 delivery has no final price" in page
    assert f'<tr id="line-{unpriced}" class="unpriced">' in page
    rows = csv_rows(admin.get(delivered["path"].replace("statements?", "statements.csv?")))
    assert [r[9] for r in rows[1:] if r[2] == unpriced] == ["true"]
    # the agency's page links to its statements
    assert "agency-statements-link" in admin.get(
        f"/console/agencies/{delivered['agency']}").get_data(as_text=True)


def invoice(prices: dict[str, int], *, planted: str, left_out: str) -> bytes:
    """A Lalamove-style invoice (``orderId;price;date``, Indonesian amounts, a BOM): one price
    500 higher than reported, one order left out, one order nobody made, one formula."""
    lines = ["\ufefforderId;price;date"]
    for order_id, price in prices.items():
        if order_id == left_out:
            continue
        amount = price + 500 if order_id == planted else price
        lines.append(f"{order_id};{amount:,}".replace(",", ".") + ";2026-03-05")
    lines += ["GK-NOBODY-1;15.000,00;2026-03-06", "=cmd|' /C calc'!A0;1000;2026-03-07"]
    return "\r\n".join(lines).encode("utf-8")


def test_reconciliation_finds_the_planted_difference_the_missing_and_the_unknown_orders(
        delivered):
    app, prices = delivered["app"], delivered["prices"]
    planted, left_out, kept = list(prices)
    manager = sign_in(app, "agency_manager", agency=delivered["agency"])
    path = f"/console/agencies/{delivered['agency']}/statements/reconcile"
    form = {"service": "medicine_delivery", "month": delivered["month"],
            "provider": "gosend_sandbox"}

    def upload(**extra):
        data = {**form, **extra,
                "invoice": (io.BytesIO(invoice(prices, planted=planted, left_out=left_out)),
                            "invoice.csv")}
        return manager.post(path, data, content_type="multipart/form-data")

    manager.get(delivered["path"])
    page = upload()
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    counts = {kind: html.split(f'id="count-{kind}">')[1].split("<")[0]
              for kind in ("unknown", "missing", "difference", "matched")}
    assert counts == {"unknown": "2", "missing": "1", "difference": "1", "matched": "1"}
    assert planted in html.split('class="reconcile-difference"')[1]
    assert left_out in html.split('class="reconcile-missing"')[1]

    rows = csv_rows(upload(**{"as": "csv"}))
    assert rows[0] == list(statements.RECONCILIATION_HEADER)
    found = {(r[0], r[1]) for r in rows[1:]}
    assert {("difference", planted), ("missing", left_out), ("matched", kept),
            ("unknown", "GK-NOBODY-1"), ("unknown", "'=cmd|' /C calc'!A0")} == found
    (difference,) = [r for r in rows if r[0] == "difference"]
    assert (int(difference[6]), int(difference[7]), int(difference[8])) == (
        prices[planted] + 500, prices[planted], 500)
    assert not any(cell.startswith("=") for row in rows for cell in row)


def test_a_file_that_is_not_an_invoice_is_refused_on_the_page(delivered):
    admin = sign_in(delivered["app"], "admin")
    admin.get(delivered["path"])
    refused = admin.post(
        f"/console/agencies/{delivered['agency']}/statements/reconcile",
        {"service": "medicine_delivery", "month": delivered["month"],
         "invoice": (io.BytesIO(b"foo,bar\n1,2\n"), "x.csv")},
        content_type="multipart/form-data")
    assert refused.status_code == 422
    assert "No order id column" in refused.get_data(as_text=True)
    too_big = admin.post(
        f"/console/agencies/{delivered['agency']}/statements/reconcile",
        {"service": "medicine_delivery", "month": delivered["month"],
         # over api.max_body_bytes (256 KiB), under werkzeug's spooling to a temporary file
         "invoice": (io.BytesIO(b"order_id,amount\n" + b"1" * 300 * 1024), "x.csv")},
        content_type="multipart/form-data")
    # the gateway's body limit (api.max_body_bytes) comes first, on a page that says why
    assert too_big.status_code == 413
    assert "The file is too large." in too_big.get_data(as_text=True)


def test_agency_staff_see_only_their_own_agencys_statement_and_cannot_reconcile(delivered):
    app, agency, other = delivered["app"], delivered["agency"], delivered["other"]
    mine = sign_in(app, "agency_staff", agency=agency)
    assert mine.get("/console/statements").headers["Location"].endswith(
        f"/console/agencies/{agency}/statements")
    html = mine.get(delivered["path"]).get_data(as_text=True)
    assert f'data-amount="{sum(delivered["prices"].values())}"' in html
    assert 'id="reconcile-form"' not in html
    assert mine.post(f"/console/agencies/{agency}/statements/reconcile",
                     {"service": "medicine_delivery"}).status_code == 403

    stranger = sign_in(app, "agency_staff", agency=other)
    for path in (delivered["path"],
                 delivered["path"].replace("statements?", "statements.csv?")):
        assert stranger.get(path).status_code == 404
    stranger_manager = sign_in(app, "agency_manager", agency=other)
    stranger_manager.get("/console/statements")
    assert stranger_manager.post(
        f"/console/agencies/{agency}/statements/reconcile",
        {"service": "medicine_delivery", "month": delivered["month"],
         "invoice": (io.BytesIO(b"order_id,amount\nx,1\n"), "x.csv")},
        content_type="multipart/form-data").status_code == 404

    # a test-world account of the agency itself sees no live money
    test_world = sign_in(app, "agency_staff", agency=agency, key_type="test")
    assert 'id="statement-empty"' in test_world.get(delivered["path"]).get_data(as_text=True)
    # unknown service or month: nothing here
    admin = sign_in(app, "admin")
    assert admin.get(f"/console/agencies/{agency}/statements?month=2026-13").status_code == 404
    assert admin.get(f"/console/agencies/{agency}/statements?service=nope").status_code == 404
    assert admin.get("/console/agencies/nope/statements").status_code == 404
