"""Rate limits: a token bucket per agency and key type, in Redis, answering 429 with
Retry-After."""

from __future__ import annotations

import time

from tests.conftest import bearer, new_key


def test_an_agency_over_its_burst_gets_429_with_retry_after_then_recovers(make_app):
    # One token every two seconds: a busy machine stalling a request for a second (seen under
    # the parallel suite: 0.7 s) must not refill the bucket between the fourth and fifth call.
    app = make_app(api={"rate_limits": {"live": {"rate": 0.5, "burst": 3},
                                        "test": {"rate": 1.0, "burst": 1}}})
    client = app.test_client()
    key = new_key(app)
    answers = [client.get("/api/v1/services", headers=bearer(key)) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    limited = answers[3]
    assert limited.get_json()["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert retry_after >= 1
    time.sleep(retry_after + 0.1)
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


BAD_KEY = "gw_live_AAAAAAAAAA_" + "B" * 40


def _from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_an_address_sending_bad_keys_gets_429_then_others_are_unaffected(make_app):
    app = make_app(api={"failed_key_limit": {"attempts": 3, "window_seconds": 60}})
    guesser, neighbour = _from(app, "203.0.113.9"), _from(app, "198.51.100.7")
    answers = [guesser.get("/api/v1/services", headers=bearer(BAD_KEY)) for _ in range(5)]
    assert [r.status_code for r in answers] == [401, 401, 401, 429, 429]
    limited = answers[3]
    body = limited.get_json()
    assert set(body) == {"code", "message", "status", "correlation_id"}
    assert (body["code"], body["status"]) == ("too_many_failed_keys", 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert BAD_KEY not in limited.get_data(as_text=True)
    # Once limited, the address's guesses are not even looked at (a right "guess" too).
    key = new_key(app)
    assert guesser.get("/api/v1/services", headers=bearer(key)).status_code == 429
    # Another address: its bad key is only a 401, its good key works.
    assert neighbour.get("/api/v1/services", headers=bearer(BAD_KEY)).status_code == 401
    assert neighbour.get("/api/v1/services", headers=bearer(key)).status_code == 200
    # Calls with no credentials at all are not guesses and are not counted.
    stranger = _from(app, "192.0.2.44")
    assert [stranger.get("/api/v1/services").status_code for _ in range(5)] == [401] * 5


def test_bad_keys_behind_a_trusted_proxy_count_per_forwarded_address(make_app):
    app = make_app(trusted_proxies=1,
                   api={"failed_key_limit": {"attempts": 2, "window_seconds": 60}})
    proxy = _from(app, "10.0.0.2")
    for _ in range(3):
        proxy.get("/api/v1/services", headers={**bearer(BAD_KEY),
                                              "X-Forwarded-For": "203.0.113.9"})
    guessed = proxy.get("/api/v1/services", headers={**bearer(BAD_KEY),
                                                     "X-Forwarded-For": "203.0.113.9"})
    assert guessed.status_code == 429
    other = proxy.get("/api/v1/services", headers={**bearer(new_key(app)),
                                                   "X-Forwarded-For": "198.51.100.7"})
    assert other.status_code == 200
