"""The SKM survey /s/<token>: after delivery only, once per request, forms that cannot be
forged or tampered with, answers checked with clear errors."""

from __future__ import annotations

import re
import threading
import time

from sqlalchemy import func, select

from gateway import skm
from gateway.models import AuditRecord, SurveyAnswer
from gateway.public.survey import FORM_LIFETIME
from gateway.statuses import Status
from tests.gateway.public.helpers import move, submit, token_of

ALL_GOOD = {code: "4" for code in skm.CODES}


def delivered(app) -> str:
    answer = submit(app)
    move(app, answer["id"], Status.BOOKED, Status.PICKED_UP, Status.DELIVERED)
    return token_of(answer)


def form_token(client, token) -> str:
    html = client.get(f"/s/{token}").get_data(as_text=True)
    return re.search(r'name="form_token" value="([^"]+)"', html).group(1)


def answers(app) -> list[SurveyAnswer]:
    with app.extensions["gateway"].db.read() as session:
        rows = session.scalars(select(SurveyAnswer)).all()
        session.expunge_all()
        return rows


def test_the_form_has_the_nine_elements_on_the_1_to_4_scale_in_indonesian_and_english(app):
    token = delivered(app)
    client = app.test_client()
    html = client.get(f"/s/{token}").get_data(as_text=True)
    for element in skm.ELEMENTS:
        assert element.name["id"] in html
        assert html.count(f'name="{element.code}"') == 4
    assert "Sangat mahal" in html and "Gratis" in html
    assert "<script" not in html and len(html.encode()) < 50 * 1024
    english = client.get(f"/s/{token}?lang=en").get_data(as_text=True)
    assert "Requirements" in english and "Very expensive" in english


def test_the_survey_opens_only_after_delivery(app):
    answer = submit(app)
    token = token_of(answer)
    client = app.test_client()
    move(app, answer["id"], Status.BOOKED, Status.PICKED_UP)
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    assert "Survei dibuka setelah kiriman diterima." in page.get_data(as_text=True)
    assert 'name="u1"' not in page.get_data(as_text=True)
    refused = client.post(f"/s/{token}", data={**ALL_GOOD, "form_token": "1.x"})
    assert refused.status_code == 409 and answers(app) == []


def test_an_answer_is_recorded_once_and_a_second_post_is_refused(app):
    token = delivered(app)
    client = app.test_client()
    second_form = form_token(client, token)          # a second tab, opened before sending
    sent = client.post(f"/s/{token}", data={
        **ALL_GOOD, "u4": "3", "comment": "Kurir ramah", "complaint": "Obat datang terlambat",
        "form_token": form_token(client, token)})
    assert sent.status_code == 201
    assert "Jawaban Anda sudah kami catat." in sent.get_data(as_text=True)
    (row,) = answers(app)
    assert (row.u1, row.u4, row.has_complaint) == (4, 3, True)
    vault = app.extensions["gateway"].vault
    assert vault.open(row.complaint_ciphertext) == "Obat datang terlambat"
    assert b"terlambat" not in row.complaint_ciphertext          # sealed at rest
    again = client.post(f"/s/{token}", data={**ALL_GOOD, "form_token": second_form})
    assert again.status_code == 409
    assert "sudah diisi" in again.get_data(as_text=True)
    assert len(answers(app)) == 1
    assert "sudah diisi" in client.get(f"/s/{token}").get_data(as_text=True)
    with app.extensions["gateway"].db.read() as session:
        record = session.scalars(select(AuditRecord).where(
            AuditRecord.action == "survey.answer")).one()
        assert "terlambat" not in str(record.details)


def test_two_submits_at_the_same_moment_leave_one_answer(app):
    token = delivered(app)
    clients = [app.test_client() for _ in range(4)]
    tokens = [form_token(c, token) for c in clients]
    start = threading.Barrier(len(clients))
    statuses = []

    def send(client, signed):
        start.wait()
        statuses.append(client.post(f"/s/{token}", data={**ALL_GOOD,
                                                         "form_token": signed}).status_code)

    threads = [threading.Thread(target=send, args=pair) for pair in zip(clients, tokens,
                                                                         strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    with app.extensions["gateway"].db.read() as session:
        assert session.scalar(select(func.count()).select_from(SurveyAnswer)) == 1


def test_invalid_values_are_refused_with_clear_errors(app):
    token = delivered(app)
    client = app.test_client()
    bad = {**ALL_GOOD, "u1": "5", "u3": "0", "u9": "'; DROP TABLE survey_answers; --"}
    del bad["u2"]
    refused = client.post(f"/s/{token}", data={**bad, "form_token": form_token(client, token),
                                               "comment": "x" * 2001})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert html.count("Mohon pilih salah satu dari empat jawaban.") == 3
    assert html.count("Mohon jawab pertanyaan ini.") == 1
    assert "Paling banyak 2000 karakter." in html
    assert 'value="4" checked' in html                      # what was right stays chosen
    assert answers(app) == []


def test_a_tampered_forged_or_stale_form_token_is_refused(app):
    token = delivered(app)
    client = app.test_client()
    signed = form_token(client, token)
    issued, signature = signed.split(".")
    other = delivered(app)
    stale = int(time.time()) - FORM_LIFETIME - 10
    for forged in ("", "nonsense", f"{int(issued) + 1}.{signature}",
                   f"{issued}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",
                   form_token(client, other),            # another request's form
                   f"{stale}.{signature}", f"-1.{signature}", f"{'9' * 40}.{signature}"):
        refused = client.post(f"/s/{token}", data={**ALL_GOOD, "form_token": forged})
        assert refused.status_code == 400, forged
        assert "kedaluwarsa" in refused.get_data(as_text=True)
    assert answers(app) == []


def test_the_survey_page_carries_the_same_privacy_headers(app):
    token = delivered(app)
    response = app.test_client().get(f"/s/{token}")
    assert response.headers["X-Robots-Tag"].startswith("noindex")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "form-action 'self'" in response.headers["Content-Security-Policy"]


def test_the_retention_purge_removes_the_answers_text_and_keeps_its_scores(app):
    from datetime import timedelta

    from gateway.models import ServiceRequest, utcnow
    from gateway.purge import purge_expired

    token = delivered(app)
    client = app.test_client()
    client.post(f"/s/{token}", data={**ALL_GOOD, "comment": "Saya Bu Kunigunde",
                                     "complaint": "Telepon 0812", "form_token":
                                     form_token(client, token)})
    (row,) = answers(app)
    with app.extensions["gateway"].db.write() as session:
        session.get(ServiceRequest, row.request_id).courier_first_name = "Budi"
    assert purge_expired(app.extensions["gateway"], now=utcnow() + timedelta(days=400)) == 1
    (row,) = answers(app)
    assert (row.comment_ciphertext, row.complaint_ciphertext) == (None, None)
    assert (row.u1, row.has_complaint) == (4, True)
    with app.extensions["gateway"].db.read() as session:
        assert session.get(ServiceRequest, row.request_id).courier_first_name is None


def test_a_database_outage_on_submit_is_a_page_not_a_trace_and_stores_nothing(
        app, gateway_database_url):
    from tests.reliability.test_database_outage import PostgresRefusing, SqliteLockedOut

    token = delivered(app)
    client = app.test_client()
    signed = form_token(client, token)
    outage = SqliteLockedOut(gateway_database_url, seconds=12) \
        if gateway_database_url.startswith("sqlite") else PostgresRefusing(gateway_database_url)
    with outage:
        response = client.post(f"/s/{token}", data={**ALL_GOOD, "form_token": signed})
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert "Mohon maaf" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert answers(app) == []
    again = client.post(f"/s/{token}", data={**ALL_GOOD, "form_token": signed})
    assert again.status_code == 201
