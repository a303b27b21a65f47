"""Notices at each step of a medicine delivery, end to end over real HTTP: the GO-SEND
simulator moves the booking, its reports move the request, and the WhatsApp simulator (or,
when WhatsApp fails, the SMS simulator) receives accepted (with a working tracking link),
courier assigned (first name and plate), the handover PIN and delivered (with a working
survey link), in the request's language, each exactly once (``gateway.notices``)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from gateway.models import Notice, ServiceRequest
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.records import transition
from gateway.settings import ConfigError
from gateway.statuses import Status
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, sim_post
from tests.gateway.notifiers.conftest import everything_received, sms_sent, whatsapp_sent
from tests.gateway.public.helpers import DISTINCTIVE, SECRET_WORDS

CREATE = "/api/v1/services/medicine_delivery/requests"
PATIENT_DIGITS = "6281234567890"


@pytest.fixture
def courier_app(notify_app, gateway_gosend):
    """``courier_app(**overrides)``: notices to the two simulators, medicine requests to the
    GO-SEND simulator, whose clock the test moves."""
    gateway_gosend.stop_clock()

    def make(**overrides):
        app = notify_app(
            couriers={"gosend_sandbox": {"enabled": True, "base_url": gateway_gosend.url,
                                         "timeout_seconds": 1, **GOSEND_TEST_CREDENTIALS},
                      "own_fleet": {"enabled": False}},
            **{"services": {"medicine_delivery": {"couriers": ["gosend_sandbox"]}},
               **overrides})
        gateway_gosend.webhook_url = f"{app.server_url}/webhooks/gosend_sandbox"
        return app

    return make


def _notices(app, request_id) -> list[Notice]:
    with app.extensions["gateway"].db.read() as session:
        return session.scalars(select(Notice).where(Notice.request_id == request_id)
                               .order_by(Notice.created_at)).all()


def _wait_for_notice(app, request_id, kind, timeout=15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drain(app)
        if kind in {n.kind for n in _notices(app, request_id)}:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} notice")


def deliver(app, sim, body) -> tuple[str, str]:
    """A request made with a test key and carried to delivered by the GO-SEND simulator.
    :return: (key, request id)"""
    key = new_key(app, key_type="test")
    answer = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert answer.status_code == 202, answer.get_json()
    request_id = answer.get_json()["id"]
    wait_for_status(app, request_id, "booked")
    (booking,) = bookings(sim)
    order = booking["orderNo"]
    assert sim_post(sim, f"/_sim/bookings/{order}/advance")["status"] == "allocated"
    wait_for_status(app, request_id, "driver_assigned")
    # GO-SEND's webhook names the driver; the gateway asks for the plate itself
    _wait_for_notice(app, request_id, "courier_assigned")
    for _ in range(6):        # allocated -> ... -> delivered, one step at a time
        if sim_post(sim, f"/_sim/bookings/{order}/advance")["status"] in sim.terminal:
            break
        drain(app)
    wait_for_status(app, request_id, "delivered")
    _wait_for_notice(app, request_id, "delivered")
    return key, request_id


def _texts(messages) -> dict[str, list[str]]:
    return {m["template"]["name"]: [p["text"] for p in
                                    m["template"]["components"][0]["parameters"]]
            for m in messages}


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_a_medicine_delivery_tells_the_patient_each_step_by_whatsapp_in_indonesian(
        courier_app, gateway_gosend, whatsapp_sim, sms_sim):
    app = courier_app()
    gateway = app.extensions["gateway"]
    _key, request_id = deliver(app, gateway_gosend, DISTINCTIVE)

    sent = whatsapp_sent(whatsapp_sim)
    assert all(m["to"] == PATIENT_DIGITS for m in sent)
    assert all(m["template"]["language"] == {"code": "id"} for m in sent)
    texts = _texts(sent)
    assert sorted(texts) == sorted(["layanan_diterima_id", "kurir_ditugaskan_id",
                                    "pin_serah_terima_id", "layanan_terkirim_id"])
    assert len(sent) == 4 and sms_sent(sms_sim) == []
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, request_id)
        pin = gateway.vault.open(record.delivery_pin_ciphertext)
        tracking, survey = gateway.links.tracking_url(record), gateway.links.survey_url(record)
        courier, plate = record.courier_first_name, record.courier_plate
    assert texts["layanan_diterima_id"] == ["Kunigunde", "Pengantaran obat (Gancang Aron)",
                                            tracking]
    assert texts["kurir_ditugaskan_id"] == ["Kunigunde", courier, plate,
                                            "Pengantaran obat (Gancang Aron)"]
    assert texts["pin_serah_terima_id"] == ["Pengantaran obat (Gancang Aron)", pin]
    assert texts["layanan_terkirim_id"] == ["Kunigunde", "Pengantaran obat (Gancang Aron)",
                                            survey]
    # the links work
    client = app.test_client()
    assert client.get(_path(tracking)).status_code == 200
    assert client.get(_path(survey)).status_code == 200
    # nothing medical, no NIK, no address reached the notifiers
    text = everything_received(whatsapp_sim, sms_sim)
    for word in SECRET_WORDS:
        if word in (PATIENT_DIGITS, "Kunigunde"):
            continue         # the number the notice goes to, the first name it greets
        assert word not in text


def test_with_whatsapp_failing_the_same_notices_arrive_by_sms_each_once(
        courier_app, gateway_gosend, whatsapp_sim, sms_sim):
    whatsapp_sim.start_outage("reject", 600)          # no number is on WhatsApp
    app = courier_app()
    _key, request_id = deliver(app, gateway_gosend, DISTINCTIVE)

    assert whatsapp_sim.bookings == {}
    bodies = [m["Body"] for m in sms_sent(sms_sim)]
    assert all(m["To"] == "+" + PATIENT_DIGITS for m in sms_sent(sms_sim))
    assert len(bodies) == 4
    assert sum(b.startswith("Halo Kunigunde, permintaan") and "/t/" in b for b in bodies) == 1
    assert sum(b.startswith("Halo Kunigunde, kurir") for b in bodies) == 1
    assert sum(b.startswith("Kode serah terima") for b in bodies) == 1
    assert sum("/s/" in b and "sudah diterima" in b for b in bodies) == 1
    notices = _notices(app, request_id)
    assert sorted(n.kind for n in notices) == ["accepted", "courier_assigned", "delivered",
                                               "pin"]
    assert all(n.channel == "sms" for n in notices)


def test_a_replayed_status_makes_no_second_notice_and_english_is_honoured(
        courier_app, whatsapp_sim):
    app = courier_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    body = {**DISTINCTIVE, "prescription_id": "RX-ZEBRA-0002", "language": "en"}
    answer = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert answer.status_code == 202, answer.get_json()
    request_id = answer.get_json()["id"]
    drain(app)
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        for _ in range(2):
            transition(gateway, session, record, Status.FAILED, source="courier:test")
    with gateway.db.write() as session:
        # a replay after the status applied: nothing moves, nothing is sent again
        record = session.get(ServiceRequest, request_id)
        transition(gateway, session, record, Status.FAILED, source="courier:test")
    drain(app)
    texts = _texts(whatsapp_sent(whatsapp_sim))
    assert sorted(texts) == ["layanan_diterima_en", "layanan_gagal_en"]
    # the sending office: the pickup place (config/services.yaml) and its phone
    assert texts["layanan_gagal_en"] == ["Kunigunde", "Medicine delivery (Gancang Aron)",
                                         "Puskesmas Sobo", "+6281100000001"]
    assert sorted(n.kind for n in _notices(app, request_id)) == ["accepted", "failed"]


def test_pin_recipient_agency_sends_no_pin_and_patient_keeps_it_from_the_api(
        courier_app, gateway_gosend, whatsapp_sim):
    app = courier_app(services={"medicine_delivery": {"couriers": ["gosend_sandbox"],
                                                      "pin_recipient": "patient"}})
    gateway_gosend.webhook_url = f"{app.server_url}/webhooks/gosend_sandbox"
    key = new_key(app, key_type="test")
    answer = app.test_client().post(CREATE, json=DISTINCTIVE, headers=bearer(key))
    assert answer.status_code == 202
    assert answer.get_json()["delivery_pin"] is None
    detail = app.test_client().get(f"/api/v1/requests/{answer.get_json()['id']}",
                                   headers=bearer(key)).get_json()
    assert detail["delivery_pin"] is None


def test_a_language_other_than_id_or_en_is_refused_on_its_field(courier_app):
    app = courier_app()
    key = new_key(app, key_type="test")
    for bad in ("fr", "", 7, "ID; DROP TABLE", "x" * 5000):
        answer = app.test_client().post(CREATE, json={**DISTINCTIVE, "language": bad},
                                        headers=bearer(key))
        assert answer.status_code == 422
        assert "language" in answer.get_json()["fields"], bad


@pytest.mark.parametrize(("key", "value"), [
    ("pin_recipient", "everyone"), ("pin_recipient", None), ("pin_recipient", ["patient"]),
    ("office_phone", "call us"), ("office_phone", "0" * 40),
    ("office_phone", "+62 333\n421234"), ("office_phone", "+62333421234\n")])
def test_a_bad_pin_recipient_or_office_phone_stops_start_up_naming_its_key(
        make_app, key, value):
    with pytest.raises(ConfigError) as caught:
        make_app(services={"medicine_delivery": {"couriers": [], key: value}})
    assert any(path == f"medicine_delivery.{key}" for _file, path, _reason in
               caught.value.problems)


def test_with_no_notifier_to_carry_it_the_patients_pin_stays_in_the_api_answer(make_app):
    app = make_app(services={"medicine_delivery": {"couriers": [],
                                                   "pin_recipient": "patient"}})
    answer = app.test_client().post(CREATE, json=DISTINCTIVE,
                                    headers=bearer(new_key(app, key_type="test")))
    assert answer.status_code == 202
    assert answer.get_json()["delivery_pin"].isdigit()       # never lost


@pytest.mark.parametrize(("ending", "kinds"), [
    (Status.RETURNED, ["accepted", "failed"]), (Status.NO_DRIVER, ["accepted", "failed"]),
    (Status.CANCELLED, ["accepted"])])
def test_returned_and_no_driver_tell_the_citizen_what_next_and_a_cancel_tells_nothing(
        notify_app, whatsapp_sim, ending, kinds):
    app = notify_app(services={"medicine_delivery": {
        "couriers": [], "notices": ["accepted", "courier_assigned", "delivered", "failed"]}})
    gateway = app.extensions["gateway"]
    answer = app.test_client().post(CREATE, json=DISTINCTIVE,
                                    headers=bearer(new_key(app, key_type="test")))
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, answer.get_json()["id"])
        transition(gateway, session, record, Status.BOOKED, source="courier:test")
        transition(gateway, session, record, ending, source="courier:test")
    drain(app)
    assert sorted(n.kind for n in _notices(app, answer.get_json()["id"])) == kinds
    if "failed" in kinds:
        [failed] = [m for m in whatsapp_sent(whatsapp_sim)
                    if m["template"]["name"] == "layanan_gagal_id"]
        assert [p["text"] for p in failed["template"]["components"][0]["parameters"]][2:] \
            == ["Puskesmas Sobo", "+6281100000001"]
