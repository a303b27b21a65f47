"""The public tracking page /t/<token>: what a citizen with the link sees, and never more."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.links import TOKEN_PATTERN
from gateway.models import ServiceRequest
from gateway.settings import ConfigError
from gateway.statuses import Status
from tests.conftest import bearer, new_key
from tests.gateway.public.helpers import SECRET_WORDS, age, move, submit, token_of


def test_the_202_and_the_detail_give_a_tracking_url_with_a_random_token_not_the_id(app):
    key = new_key(app)
    first, second = submit(app, key=key), submit(app, key=key,
                                                 body={**_body(), "prescription_id": "RX-2"})
    base = app.extensions["gateway"].links.base_url
    for answer in (first, second):
        token = token_of(answer)
        assert answer["tracking_url"] == f"{base}/t/{token}"
        assert TOKEN_PATTERN.fullmatch(token)          # 32 URL-safe characters: 192 bits
        assert answer["id"] not in token and answer["id"].replace("-", "") not in token
    assert token_of(first) != token_of(second)
    detail = app.test_client().get(f"/api/v1/requests/{first['id']}", headers=bearer(key))
    assert detail.get_json()["tracking_url"] == first["tracking_url"]
    spec = app.test_client().get("/api/openapi.json").get_json()
    assert "tracking_url" in spec["components"]["schemas"]["RequestDetail"]["properties"]


def test_the_database_keeps_the_tokens_digest_and_never_the_token_in_clear(app):
    answer = submit(app)
    token = token_of(answer)
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, answer["id"])
        assert record.tracking_digest == hashlib.sha256(token.encode()).hexdigest()
        assert token.encode() not in (record.tracking_token_ciphertext or b"")
    # the request id does not open the page
    assert app.test_client().get(f"/t/{answer['id']}").status_code == 404


def _body():
    from tests.gateway.public.helpers import DISTINCTIVE

    return dict(DISTINCTIVE)


def test_the_page_shows_status_courier_and_office_never_address_items_or_name(app):
    answer = submit(app)
    move(app, answer["id"], Status.BOOKED, Status.DRIVER_ASSIGNED, Status.PICKED_UP,
         courier_first_name="Budi", courier_plate="P 1234 AB",
         courier_eta=datetime(2026, 12, 3, 3, 30, tzinfo=UTC))
    response = app.test_client().get(f"/t/{token_of(answer)}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Dalam perjalanan ke Anda" in html                 # picked up, in Indonesian
    assert "Budi" in html and "P 1234 AB" in html
    assert 'datetime="2026-12-03T10:30+07:00"' in html       # the ETA in WIB
    # the sending agency's name, and the phone of the puskesmas the delivery leaves from
    assert "Agency " in html and 'href="tel:' in html
    for word in SECRET_WORDS:
        assert word not in html, word
    assert len(response.data) < 50 * 1024
    assert "<script" not in html
    assert '<meta http-equiv="refresh" content="60">' in html   # under way: reloads itself


def test_the_courier_is_shown_only_while_on_the_way(app):
    answer = submit(app)
    move(app, answer["id"], Status.BOOKED, Status.DRIVER_ASSIGNED, Status.PICKED_UP,
         Status.DELIVERED, courier_first_name="Budi", courier_plate="P 1234 AB")
    html = app.test_client().get(f"/t/{token_of(answer)}").get_data(as_text=True)
    assert "Sudah diterima" in html and "Budi" not in html
    assert 'http-equiv="refresh"' not in html                  # ended: nothing to follow
    assert f'href="/s/{token_of(answer)}' in html            # the survey, after delivery


def test_headers_keep_the_page_out_of_search_engines_and_referers(app):
    response = app.test_client().get(f"/t/{token_of(submit(app))}")
    assert response.headers["X-Robots-Tag"].startswith("noindex")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert '<meta name="robots" content="noindex' in response.get_data(as_text=True)
    missing = app.test_client().get("/t/" + "A" * 32)
    assert missing.status_code == 404 and missing.headers["X-Robots-Tag"].startswith("noindex")


def test_unknown_malformed_and_expired_tokens_get_the_same_404_page(make_app):
    app = make_app(public={"tracking_days_after_end": 3})
    answer = submit(app)
    client = app.test_client()
    move(app, answer["id"], Status.BOOKED, Status.DELIVERED)
    token = token_of(answer)
    age(app, answer["id"], timedelta(days=2, hours=23))
    assert client.get(f"/t/{token}").status_code == 200
    assert client.get(f"/s/{token}").status_code == 200
    age(app, answer["id"], timedelta(hours=2))             # ended 3 days and 1 hour ago
    expired = client.get(f"/t/{token}")
    unknown = client.get("/t/" + "B" * 32)
    malformed = client.get("/t/%3Cscript%3E")
    assert expired.status_code == unknown.status_code == malformed.status_code == 404
    assert expired.data == unknown.data == malformed.data
    assert client.get(f"/s/{token}").status_code == 404


def test_a_request_still_under_way_does_not_expire(make_app):
    app = make_app(public={"tracking_days_after_end": 0})
    answer = submit(app)
    age(app, answer["id"], timedelta(days=30))
    assert app.test_client().get(f"/t/{token_of(answer)}").status_code == 200


def test_pages_are_rate_limited_per_client_address(make_app):
    app = make_app(public={"rate_limit": {"rate": 0.01, "burst": 3}})
    token = token_of(submit(app))
    client = app.test_client()
    answers = [client.get(f"/t/{token}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    limited = client.get(f"/t/{token}")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-Robots-Tag"].startswith("noindex")
    # guessing other tokens is limited alike, and another address has its own bucket
    assert client.get("/t/" + "C" * 32).status_code == 429
    other = client.get(f"/t/{token}", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200


def test_indonesian_by_default_with_an_english_switch(app):
    token = token_of(submit(app))
    client = app.test_client()
    indonesian = client.get(f"/t/{token}").get_data(as_text=True)
    assert "Lacak permintaan Anda" in indonesian and 'lang="id"' in indonesian
    assert 'href="?lang=en"' in indonesian
    english = client.get(f"/t/{token}?lang=en").get_data(as_text=True)
    assert "Track your request" in english and "Received" in english
    assert 'href="?lang=id"' in english
    assert "Lacak" not in english


def test_times_are_in_the_regions_zone_wita(make_app):
    app = make_app(region={"name": "Kota Denpasar", "time_zone": "Asia/Makassar",
                           "locale": "id", "currency": "IDR"})
    answer = submit(app)
    html = app.test_client().get(f"/t/{token_of(answer)}").get_data(as_text=True)
    created = datetime.fromisoformat(answer["created_at"].replace("Z", "+00:00"))
    local = created.astimezone(UTC) + timedelta(hours=8)
    assert f"{local:%d-%m-%Y %H:%M} WITA" in html
    assert f'datetime="{local:%Y-%m-%dT%H:%M}+08:00"' in html


def test_a_page_never_queries_by_a_token_that_is_not_well_formed(app):
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        before = session.scalar(select(ServiceRequest.id).limit(1))
    assert before is None
    for path in ("/t/' OR 1=1 --", "/t/" + "A" * 31, "/t/" + "A" * 33, "/t/%00" * 3):
        assert app.test_client().get(path).status_code == 404


def test_the_access_log_names_the_route_never_the_token(app, caplog):
    token = token_of(submit(app))
    with caplog.at_level("INFO", logger="gateway.http"):
        app.test_client().get(f"/t/{token}")
        app.test_client().get(f"/s/{token}")
    assert "GET /t/<token> 200" in caplog.text and "GET /s/<token> 200" in caplog.text
    assert token not in caplog.text



@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x.example", "https://",
                                 "https://user@x.example", "https://x.example/?a=1",
                                 "https://x.example/#t"])
def test_a_base_url_that_is_not_a_plain_http_address_stops_start_up(make_app, url):
    with pytest.raises(ConfigError):
        make_app(public={"base_url": url})


def test_links_start_with_the_configured_base_url_or_this_gateways_address(make_app):
    configured = make_app(public={"base_url": "https://layanan.example.go.id/"})
    answer = submit(configured)
    assert answer["tracking_url"].startswith("https://layanan.example.go.id/t/")
    gateway = configured.extensions["gateway"]
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, answer["id"])
        assert gateway.links.survey_url(record) == answer["tracking_url"].replace("/t/", "/s/")
    default = make_app(host="0.0.0.0", port=8099)  # noqa: S104 - not bound: a link only
    assert default.extensions["gateway"].links.base_url == "http://127.0.0.1:8099"
