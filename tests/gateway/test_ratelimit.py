"""Rate limits: a token bucket per agency and key type, in Redis, answering 429 with
Retry-After."""

from __future__ import annotations

import time

from tests.conftest import bearer, new_key


def test_an_agency_over_its_burst_gets_429_with_retry_after_then_recovers(make_app):
    app = make_app(api={"rate_limits": {"live": {"rate": 2.0, "burst": 3},
                                        "test": {"rate": 1.0, "burst": 1}}})
    client = app.test_client()
    key = new_key(app)
    answers = [client.get("/api/v1/services", headers=bearer(key)) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    limited = answers[3]
    assert limited.get_json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    time.sleep(0.6)
    assert client.get("/api/v1/services", headers=bearer(key)).status_code == 200


def test_buckets_are_per_agency_and_per_key_type(make_app):
    app = make_app(api={"rate_limits": {"live": {"rate": 0.1, "burst": 1},
                                        "test": {"rate": 0.1, "burst": 1}}})
    client = app.test_client()
    gateway = app.extensions["gateway"]
    one, other = new_key(app, name="One"), new_key(app, name="Other")
    from gateway.agencies import issue_key

    one_test = issue_key(gateway, "One", "test")
    assert client.get("/api/v1/services", headers=bearer(one)).status_code == 200
    assert client.get("/api/v1/services", headers=bearer(one)).status_code == 429
    assert client.get("/api/v1/services", headers=bearer(one_test)).status_code == 200
    assert client.get("/api/v1/services", headers=bearer(other)).status_code == 200


def test_public_routes_and_unknown_callers_spend_no_tokens(make_app):
    app = make_app(api={"rate_limits": {"live": {"rate": 0.1, "burst": 1}}})
    client = app.test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/services").status_code == 401
    assert client.get("/api/v1/services", headers=bearer(new_key(app))).status_code == 200
