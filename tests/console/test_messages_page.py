"""The console's messages page: every notice to citizens with its tries, filters by status,
channel, template, service and period, numbers masked; an agency's people see only their
agency's (``gateway/console/views/messages.py``)."""

from __future__ import annotations

import re

from gateway.agencies import create_agency, issue_key
from gateway.testing import drain
from tests.conftest import MEDICINE_BODY, bearer
from tests.console.conftest import sign_in
from tests.gateway.notifiers.conftest import notify_app, sms_sim, whatsapp_sim  # noqa: F401

FULL_NUMBER = ("+6281234567890", "6281234567890", "081234567890", "1234567890")


def _requests(app) -> dict:
    gateway = app.extensions["gateway"]
    out = {}
    for name in ("A", "B"):
        agency, _live = create_agency(gateway, f"Puskesmas {name}", ["medicine_delivery"],
                                      actor="test")
        key = issue_key(gateway, agency.id, "test", actor="test")
        made = app.test_client().post(
            "/api/v1/services/medicine_delivery/requests",
            json={**MEDICINE_BODY, "prescription_id": f"RX-{name}-1"}, headers=bearer(key))
        assert made.status_code == 202
        out[name] = {"agency": agency.id, "request": made.get_json()["id"]}
    drain(app)
    return out


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr class="message"[^>]*>', page)


def test_the_office_sees_every_message_filtered_and_never_a_whole_number(notify_app):  # noqa: F811
    app = notify_app()
    made = _requests(app)
    console = sign_in(app, "auditor")
    page = console.get("/console/messages").get_data(as_text=True)
    assert len(_rows(page)) == 2
    assert made["A"]["request"][:8] in page and made["B"]["request"][:8] in page
    assert "+6281••••••890" in page
    for number in FULL_NUMBER:
        assert number not in page
    assert "Siti" not in page                 # no template parameter is opened
    for query, count in (("kind=accepted&channel=whatsapp&status=sent", 2),
                         ("status=delivered", 0), ("kind=pin", 0),
                         ("service=umkm_pickup", 0), ("service=medicine_delivery", 2),
                         (f"agency={made['A']['agency']}", 1),
                         ("since=2999-01-01", 0), ("until=2000-01-01", 0),
                         ("status=<script>&channel=' OR 1=1 --&since=not-a-date", 2)):
        found = console.get(f"/console/messages?{query}")
        assert found.status_code == 200, query
        assert len(_rows(found.get_data(as_text=True))) == count, query
    detail = console.get(f"/console/requests/{made['A']['request']}").get_data(as_text=True)
    assert 'id="request-notices"' in detail and "+6281••••••890" in detail
    assert "notice sent by WhatsApp" in detail           # on the timeline too


def test_an_agencys_people_see_only_their_agencys_messages(notify_app):  # noqa: F811
    app = notify_app()
    made = _requests(app)
    console = sign_in(app, "agency_staff", agency=made["A"]["agency"], key_type="test")
    for query in ("", f"?agency={made['B']['agency']}",
                  f"?agency={made['B']['agency']}&key_type=test"):
        page = console.get(f"/console/messages{query}").get_data(as_text=True)
        assert made["A"]["request"][:8] in page, query
        assert made["B"]["request"][:8] not in page, query
    live = sign_in(app, "agency_staff", agency=made["A"]["agency"], key_type="live")
    assert _rows(live.get("/console/messages").get_data(as_text=True)) == []


def test_the_messages_page_needs_a_signed_in_user(notify_app):  # noqa: F811
    app = notify_app()
    answer = app.test_client().get("/console/messages")
    assert answer.status_code in (302, 303) and "/console/sign-in" in answer.location
