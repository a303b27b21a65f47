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


# -- a key this process knows: the three checks in one look at Redis (gateway.gatelook) ----

def test_a_known_key_from_an_address_held_back_is_refused_and_spends_no_token(make_app):
    app = make_app(api={"failed_key_limit": {"attempts": 3, "window_seconds": 60},
                        "rate_limits": {"live": {"rate": 0.01, "burst": 2}}})
    guesser, neighbour = _from(app, "203.0.113.9"), _from(app, "198.51.100.7")
    key = new_key(app)
    assert guesser.get("/api/v1/services", headers=bearer(key)).status_code == 200   # known
    assert [guesser.get("/api/v1/services", headers=bearer(BAD_KEY)).status_code
            for _ in range(3)] == [401, 401, 401]
    held = guesser.get("/api/v1/services", headers=bearer(key))
    assert (held.status_code, held.get_json()["code"]) == (429, "too_many_failed_keys")
    # The agency still has its second token: the held-back call did not take it.
    assert neighbour.get("/api/v1/services", headers=bearer(key)).status_code == 200
    spent = neighbour.get("/api/v1/services", headers=bearer(key))
    assert (spent.status_code, spent.get_json()["code"]) == (429, "rate_limited")


def test_a_revoked_key_the_process_knew_never_spends_its_agencys_tokens(make_app):
    from gateway.agencies import issue_key, revoke_key

    app = make_app(api={"rate_limits": {"live": {"rate": 0.01, "burst": 2}}})
    client = app.test_client()
    gateway = app.extensions["gateway"]
    first = new_key(app, name="Puskesmas Giri")
    second = issue_key(gateway, "Puskesmas Giri", "live", actor="test")
    assert client.get("/api/v1/services", headers=bearer(first)).status_code == 200
    revoke_key(gateway, "_".join(first.split("_")[:3]), actor="test")
    assert [client.get("/api/v1/services", headers=bearer(first)).status_code
            for _ in range(5)] == [401] * 5
    assert client.get("/api/v1/services", headers=bearer(second)).status_code == 200
    assert client.get("/api/v1/services", headers=bearer(second)).status_code == 429


def test_a_known_key_is_checked_in_one_round_trip_to_redis(make_app):
    """Watched with Redis's MONITOR, on this test's own database: a call with a key seen a
    moment ago sends one command (the look script), not the four of the checks apart."""
    import threading

    from redis import Redis

    app = make_app(api={"rate_limits": {"live": {"rate": 100, "burst": 100}}})
    gateway = app.extensions["gateway"]
    client = app.test_client()
    key = new_key(app)
    for _ in range(2):      # read once, then known (and the script loaded into Redis)
        assert client.get("/api/v1/services", headers=bearer(key)).status_code == 200
    database = str(gateway.redis.connection_pool.connection_kwargs.get("db", 0))
    watcher, marker = Redis.from_url(gateway.redis_url), f"end-{time.time_ns()}"
    seen, ready = [], threading.Event()

    def watch():
        with watcher.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if marker in command["command"]:
                    return
                # what a script runs inside Redis is shown too: the calls' own commands only
                if str(command["db"]) == database and command.get("client_type") != "lua":
                    seen.append(command["command"].split()[0].upper())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)          # MONITOR is on before the first call
    for _ in range(5):
        assert client.get("/api/v1/services", headers=bearer(key)).status_code == 200
    gateway.redis.echo(marker)
    thread.join(10)
    watcher.close()
    assert seen.count("EVALSHA") == 5, seen
    # (a new connection's handshake is not a call's: a loaded machine may open one)
    handshake = ("HELLO", "CLIENT", "SELECT", "AUTH", "ECHO")
    assert [c for c in seen if c not in ("EVALSHA", *handshake)] == [], seen
