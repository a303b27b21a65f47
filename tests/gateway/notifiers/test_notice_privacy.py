"""A notice never says a drug name, a diagnosis, a NIK or an address: every template of
every service, in both languages, is sent to the simulators with distinctive words in every
personal field of the request, and nothing the simulators received over HTTP holds one
(``gateway.notices``; the session-wide check is in ``conftest.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.models import Notice, ServiceRequest
from gateway.records import transition
from gateway.settings import NOTICE_KINDS
from gateway.statuses import Status
from gateway.testing import drain
from tests.conftest import bearer, new_key
from tests.gateway.notifiers.conftest import everything_received, sms_sent, whatsapp_sent
from tests.gateway.public.helpers import DISTINCTIVE

UMKM = {"order_id": "BWM-ZEBRA-1",
        "business": {"name": "Kopi Gurdaspur", "contact_name": "Pak Hrothgar",
                     "phone": "081234567891", "address": "Jalan Vindobona 12, Quokkaville",
                     "location": {"lat": -8.2163, "lng": 114.3167}},
        "parcel": {"description": "Obat Zylotrexamab titipan", "weight_grams": 1200},
        "dropoffs": [{"name": "Dewi Ondskapsfull", "phone": "+6285234567890",
                      "address": "Jalan Xanthippe 80, Kelurahan Brobdingnag",
                      "location": {"lat": -8.219, "lng": 114.369},
                      "note": "Pagar Marzipan"}]}
TOURISM = {"booking_id": "TRIP-ZEBRA-7", "visitor": {"name": "Anna Quaxelbrot",
                                                     "phone": "+6281398765432"},
           "pickup_point_id": "taman-sritanjung", "destination_id": "pulau-merah",
           "passengers": 2, "group_name": "Rombongan Wirasaba"}
#: personal words of the bodies above that no notice may carry (the first name it greets
#: the citizen by is allowed; the surname is not)
NEVER = ("Wirasaba", "Quetzalcoatl", "Xylofon", "Zylotrexamab", "Marzipan",
         "3510011203650002", "RX-ZEBRA", "Gurdaspur", "Hrothgar", "Vindobona", "Quokkaville",
         "Ondskapsfull", "Xanthippe", "Brobdingnag", "Quaxelbrot", "BWM-ZEBRA", "TRIP-ZEBRA")
CASES = {"medicine_delivery": DISTINCTIVE, "umkm_pickup": UMKM, "tourism_transport": TOURISM}


@pytest.mark.parametrize("language", ["id", "en"])
def test_no_template_of_any_service_carries_medical_data_nik_or_address(
        notify_app, whatsapp_sim, sms_sim, language):
    every = list(NOTICE_KINDS)
    app = notify_app(services={
        name: {"couriers": [], "notices": every, "pin_recipient": "both",
               "office_phone": "0333-421234"} for name in CASES})
    gateway = app.extensions["gateway"]
    key = new_key(app, services=tuple(CASES), key_type="test")
    for name, body in CASES.items():
        for ending in (Status.DELIVERED, Status.FAILED):
            made = {**body, "language": language}
            reference = next(k for k in ("prescription_id", "order_id", "booking_id")
                             if k in body)
            made[reference] = f"{body[reference]}-{ending}"
            answer = app.test_client().post(f"/api/v1/services/{name}/requests", json=made,
                                            headers=bearer(key))
            assert answer.status_code == 202, answer.get_json()
            with gateway.db.write() as session:
                record = session.get(ServiceRequest, answer.get_json()["id"])
                record.courier_first_name, record.courier_plate = "Joko", "P 1234 XY"
                transition(gateway, session, record, Status.DRIVER_ASSIGNED,
                           source="courier:test")
                transition(gateway, session, record, ending, source="courier:test")
    drain(app)

    sent = {m["template"]["name"] for m in whatsapp_sent(whatsapp_sim)}
    # every template of the language went out (the PIN only for the medicine service)
    assert sent == {f"{t}_{language}" for t in ("layanan_diterima", "kurir_ditugaskan",
                                                 "pin_serah_terima", "layanan_terkirim",
                                                 "layanan_gagal")}
    # each service's citizen got each of its notices
    per_service = {}
    with gateway.db.read() as session:
        for notice in session.scalars(select(Notice)):
            per_service.setdefault(notice.request.service, set()).add(notice.kind)
    assert per_service == {"medicine_delivery": set(NOTICE_KINDS),
                           "umkm_pickup": set(NOTICE_KINDS) - {"pin"},
                           "tourism_transport": set(NOTICE_KINDS) - {"pin"}}
    assert sms_sent(sms_sim) == []
    text = everything_received(whatsapp_sim, sms_sim)
    for word in NEVER:
        assert word not in text, word
