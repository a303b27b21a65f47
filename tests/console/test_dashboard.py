"""The dashboard: today's requests as counted from real requests booked at the GO-SEND
simulator and the own fleet, the targets, the couriers' health and the queues."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert, select, update

from gateway.models import CourierAttempt, ServiceRequest, StatusEvent
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key
from tests.console.conftest import sign_in
from tests.console.page import by_id, untranslated

MEDICINE = "/api/v1/services/medicine_delivery/requests"
UMKM = "/api/v1/services/umkm_pickup/requests"
WIB = ZoneInfo("Asia/Jakarta")


def submit(app, key, url, body) -> str:
    response = app.test_client().post(url, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def medicine(body, prescription_id, **changes) -> dict:
    return {**body, "prescription_id": prescription_id, **changes}


def cancel(app, key, request_id) -> None:
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code < 300, response.get_json()


def change(app, statement) -> None:
    with app.extensions["gateway"].db.write() as session:
        session.execute(statement)


def table(page, element_id) -> dict[str, str]:
    return dict(by_id(page, element_id).rows())


def test_todays_requests_are_counted_by_service_status_and_courier_but_not_yesterdays(
        gosend_app, medicine_body):
    app = gosend_app()
    key = new_key(app, services=("medicine_delivery", "umkm_pickup"), key_type="test")
    delivered = submit(app, key, MEDICINE, medicine(medicine_body, "RX-1"))
    # Cold-chain medicine goes only to the own fleet, where it waits for staff: booked.
    own_fleet = submit(app, key, MEDICINE, medicine(medicine_body, "RX-2", cold_chain=True))
    parcel = submit(app, key, UMKM, app.extensions["gateway"].services["umkm_pickup"]
                    .example_request)
    cancel(app, key, parcel)
    yesterday = submit(app, key, MEDICINE, medicine(medicine_body, "RX-3"))
    cancel(app, key, yesterday)
    midnight = datetime.now(WIB).replace(hour=0, minute=0, second=0, microsecond=0)
    change(app, update(ServiceRequest).where(ServiceRequest.id == yesterday)
           .values(created_at=midnight - timedelta(minutes=1)))
    wait_for_status(app, delivered, "delivered")
    wait_for_status(app, own_fleet, "booked")

    page = sign_in(app, "auditor").get("/console/dashboard")
    assert page.status_code == 200
    assert by_id(page, "today-total").text.endswith("3")
    assert table(page, "today-by-service") == {"Medicine delivery (Gancang Aron)": "2",
                                               "UMKM parcel pickup": "1"}
    assert table(page, "today-by-status") == {"Booked": "1", "Delivered": "1", "Cancelled": "1"}
    assert table(page, "today-by-provider") == {"gosend_sandbox": "1", "own_fleet": "1",
                                                "No courier (yet)": "1"}
    # The cancelled parcel was never dispatched and is left out of the speed figure.
    assert by_id(page, "sla-dispatch").text == "100% (2 of 2)"
    assert by_id(page, "sla-medicine_delivery").text == "100% (1 of 1)"


def test_the_shares_dispatched_quickly_and_delivered_on_target_count_the_slow_ones(
        gosend_app, medicine_body):
    app = gosend_app(services={
        "medicine_delivery": {"couriers": ["gosend_sandbox", "own_fleet"]},
        "tourism_transport": {"target_minutes": None}})
    key = new_key(app, key_type="test")
    quick = submit(app, key, MEDICINE, medicine(medicine_body, "RX-1"))
    slow = submit(app, key, MEDICINE, medicine(medicine_body, "RX-2"))
    waiting = submit(app, key, MEDICINE, medicine(medicine_body, "RX-3", cold_chain=True))
    for request_id in (quick, slow):
        wait_for_status(app, request_id, "delivered")
    wait_for_status(app, waiting, "booked")
    # The slow one was booked a minute after it was accepted and delivered three hours later.
    with app.extensions["gateway"].db.read() as session:
        booked_at = session.scalar(select(CourierAttempt.updated_at).where(
            CourierAttempt.request_id == slow, CourierAttempt.state == "booked"))
        delivered_at = session.scalar(select(StatusEvent.created_at).where(
            StatusEvent.request_id == slow, StatusEvent.status == "delivered"))
    change(app, update(CourierAttempt).where(CourierAttempt.request_id == slow)
           .values(updated_at=booked_at + timedelta(seconds=60)))
    change(app, update(StatusEvent).where(StatusEvent.request_id == slow,
                                          StatusEvent.status == "delivered")
           .values(created_at=delivered_at + timedelta(hours=3)))

    page = sign_in(app, "operator").get("/console/dashboard")
    assert by_id(page, "sla-dispatch").text == "67% (2 of 3)"
    assert "within 120 minutes" in by_id(page, "sla-medicine_delivery-label").text
    # The own-fleet booking is on its way within its target: not judged yet.
    assert by_id(page, "sla-medicine_delivery").text == "50% (1 of 2)"
    assert by_id(page, "sla-umkm_pickup").text == "— (0 of 0)"
    assert by_id(page, "sla-tourism_transport").text == "not measured"


def test_a_courier_that_keeps_failing_shows_its_open_circuit_and_its_failed_calls(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(couriers={
        "gosend_sandbox": {"base_url": gateway_gosend.url, "timeout_seconds": 1,
                           "circuit": {"failure_threshold": 2}, **GOSEND_TEST_CREDENTIALS},
        "own_fleet": {"enabled": True}})
    key = new_key(app, key_type="test")
    request_id = submit(app, key, MEDICINE,
                        medicine(medicine_body, "RX-1", notes_for_courier="[sim:429]"))
    wait_for_status(app, request_id, "booked")  # at the own fleet, once GO-SEND's opened

    page = sign_in(app, "auditor").get("/console/dashboard")
    gosend = by_id(page, "health-gosend_sandbox").all("td")
    assert gosend[0].text == "Open: skipped"
    assert gosend[2].text == "2"
    assert gosend[3].text.startswith("CourierTemporaryError, ")
    fleet = by_id(page, "health-own_fleet").all("td")
    assert (fleet[0].text, fleet[2].text) == ("Closed: working", "0")
    assert table(page, "today-by-provider") == {"own_fleet": "1"}


def test_the_queue_card_shows_waiting_work(app, agency, medicine_body):
    agency.post(MEDICINE, json=medicine_body)  # no worker runs: its dispatch batch waits
    console = sign_in(app, "auditor")
    page = console.get("/console/dashboard")
    assert by_id(page, "queue-summary-dispatch").all("td")[0].text == \
        "1 + 1 listed for a batch"
    drain(app)
    page = console.get("/console/dashboard")
    assert [td.text for td in by_id(page, "queue-summary-dispatch").all("td")] == \
        ["0", "—", "0"]


def test_the_dashboard_asks_the_database_the_same_few_questions_however_many_requests(
        app, agency, medicine_body):
    """Counting is done by the database: a thousand more requests add no query."""
    agency.post(MEDICINE, json=medicine_body)
    gateway = app.extensions["gateway"]
    console = sign_in(app, "auditor")

    def statements_for_one_page() -> int:
        seen = []

        def listener(_conn, _cursor, statement, *args):
            # The once-a-second look for console setting changes may or may not fall in
            # this page's time (its query, and the BEGIN of its transaction): it is not the
            # dashboard's question, and neither is opening a transaction.
            if "config_versions" not in statement and not statement.strip().upper().startswith(
                    ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
                seen.append(1)

        event.listen(gateway.db.engine, "before_cursor_execute", listener)
        try:
            assert console.get("/console/dashboard").status_code == 200
        finally:
            event.remove(gateway.db.engine, "before_cursor_execute", listener)
        return len(seen)

    before = statements_for_one_page()
    with gateway.db.read() as session:
        template = session.scalars(select(ServiceRequest)).one()
    now = datetime.now(WIB)
    rows = [{"agency_id": template.agency_id, "api_key_id": template.api_key_id,
             "service": "umkm_pickup", "key_type": "test",
             "status": ("delivered", "failed", "booked")[i % 3],
             "provider": "own_fleet" if i % 3 != 1 else None,
             "request_fingerprint": "x", "correlation_id": f"bulk-{i}",
             "created_at": now, "updated_at": now}
            for i in range(1000)]
    with gateway.db.write() as session:
        session.execute(insert(ServiceRequest), rows)
    after = statements_for_one_page()
    assert after == before
    page = console.get("/console/dashboard")
    assert table(page, "today-by-service")["UMKM parcel pickup"] == "1,000"   # en: 1,000
    assert table(page, "today-by-provider")["own_fleet"] == "667"


def test_the_dashboard_speaks_indonesian(app, agency, medicine_body):
    agency.post(MEDICINE, json=medicine_body)
    console = sign_in(app, "auditor")
    console.post("/console/language", {"language": "id", "next": "/console/dashboard"})
    page = console.get("/console/dashboard")
    assert by_id(page, "today-by-status").rows() == [["Diterima", "1"]]
    assert untranslated(page) == []
