"""Requests for the public pages' tests: made through the API, moved along in the database
as a courier's reports would move them."""

from __future__ import annotations

from datetime import timedelta

from gateway.models import ServiceRequest, StatusEvent
from gateway.records import transition
from gateway.statuses import Status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"
#: a body whose address, items, patient and notes are words found nowhere else
DISTINCTIVE = {
    "prescription_id": "RX-ZEBRA-0001",
    "pickup_location_id": "puskesmas-sobo",
    "patient": {"name": "Kunigunde Wirasaba", "phone": "+6281234567890",
                "nik": "3510011203650002",
                "address": "Jalan Quetzalcoatl Nomor 77, Kelurahan Xylofon",
                "location": {"lat": -8.2192, "lng": 114.3691}},
    "items": [{"name": "Zylotrexamab 10 mg", "quantity": 30}],
    "cold_chain": False,
    "pharmacist_counselled": True,
    "notes_for_courier": "Pagar ungu Marzipan",
}
SECRET_WORDS = ("Kunigunde", "Wirasaba", "Quetzalcoatl", "Xylofon", "Zylotrexamab",
                "Marzipan", "3510011203650002", "RX-ZEBRA", "6281234567890")


def submit(app, body=None, key=None) -> dict:
    key = key or new_key(app)
    response = app.test_client().post(CREATE, json=body or DISTINCTIVE, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def token_of(answer: dict) -> str:
    return answer["tracking_url"].rsplit("/", 1)[1]


def move(app, request_id: str, *statuses: Status, **courier) -> None:
    """Put ``statuses`` on the request as a courier's reports would (and the courier)."""
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        for status in statuses:
            transition(gateway, session, record, status, source="courier:test")
        for name, value in courier.items():
            setattr(record, name, value)


def age(app, request_id: str, by: timedelta) -> None:
    """Make everything on the request's timeline ``by`` older."""
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:
        for event in session.query(StatusEvent).filter_by(request_id=request_id):
            event.created_at = event.created_at - by
