"""Attacks on the console's sign-in throttle: lock-outs, races and spoofed addresses.

Each test plays the attacker against the real sign-in form (real Redis, real database). What
the server actually verified is read from the audit trail: every wrong password that reached
the password check leaves one refused ``admin.sign_in`` record.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from gateway.console import throttle
from gateway.console.users import create_admin
from gateway.models import AuditRecord
from gateway.testing import ConsoleClient
from tests.console.conftest import PASSWORD

ATTACKER, ADMIN_DESK = "203.0.113.9", "198.51.100.7"
PROXY = "10.0.0.2"


def browser(app, address: str | None = None, forwarded_for: str | None = None):
    """A sign-in page opened from ``address`` (REMOTE_ADDR), optionally through a proxy that
    sends ``X-Forwarded-For``."""
    client = app.test_client()
    if address:
        client.environ_base["REMOTE_ADDR"] = address
    if forwarded_for:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    page = ConsoleClient(client, None, None)
    page.get("/console/sign-in")
    return page


def attempt(page, username: str, password: str):
    return page.post("/console/sign-in", {"username": username, "password": password})


def checked_wrong_passwords(app) -> int:
    with app.extensions["gateway"].db.read() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.action == "admin.sign_in", AuditRecord.outcome == "refused"))


def test_an_attackers_failures_do_not_lock_the_admin_out_at_her_own_desk(app):
    create_admin(app.extensions["gateway"], "ani", PASSWORD, "admin", language="en")
    attacker = browser(app, ATTACKER)
    answers = [attempt(attacker, "ani", f"guess-{n}").status_code for n in range(12)]
    assert answers[:throttle.MAX_FAILURES] == [401] * throttle.MAX_FAILURES
    assert set(answers[throttle.MAX_FAILURES:]) == {429}

    desk = browser(app, ADMIN_DESK)
    signed_in = attempt(desk, "ani", PASSWORD)
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)[:300]
    assert signed_in.headers["Location"].endswith("/console/")
    # Her success does not lift the attacker's wait.
    assert attempt(attacker, "ani", PASSWORD).status_code == 429


def test_delays_grow_with_every_further_failure(app, gateway_redis):
    create_admin(app.extensions["gateway"], "bayu", PASSWORD, "admin", language="en")
    attacker = browser(app, ATTACKER)
    waits = []
    for n in range(3):
        for _ in range(throttle.MAX_FAILURES if n == 0 else 1):
            assert attempt(attacker, "bayu", f"guess-{n}").status_code == 401
        refused = attempt(attacker, "bayu", "guess")
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        # The wait is over (as if the time had passed): one more guess may be made.
        for key in gateway_redis.scan_iter("gateway:console:signin:*"):
            gateway_redis.hset(key, "until", 0)
    assert waits[0] < waits[1] < waits[2], waits


def test_forty_parallel_wrong_passwords_get_no_more_checks_than_allowed(app):
    create_admin(app.extensions["gateway"], "cahya", PASSWORD, "admin", language="en")
    pages = [browser(app, ATTACKER) for _ in range(40)]
    start = threading.Barrier(len(pages))
    statuses = []

    def guess(page, n):
        start.wait()
        statuses.append(attempt(page, "cahya", f"parallel-guess-{n}").status_code)

    threads = [threading.Thread(target=guess, args=(page, n)) for n, page in enumerate(pages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) <= throttle.MAX_FAILURES, statuses
    assert checked_wrong_passwords(app) <= throttle.MAX_FAILURES


def test_behind_a_trusted_proxy_the_forwarded_address_tells_clients_apart(make_app):
    app = make_app(trusted_proxies=1)
    create_admin(app.extensions["gateway"], "dian", PASSWORD, "admin", language="en")
    # The attacker puts a made-up address first; the proxy appends the one it saw.
    attacker = browser(app, PROXY, forwarded_for=f"192.0.2.1, {ATTACKER}")
    for n in range(throttle.MAX_FAILURES + 3):
        attempt(attacker, "dian", f"guess-{n}")
    assert attempt(attacker, "dian", PASSWORD).status_code == 429
    # Another client behind the same proxy is not the attacker.
    desk = browser(app, PROXY, forwarded_for=ADMIN_DESK)
    assert attempt(desk, "dian", PASSWORD).status_code == 302


def test_without_a_trusted_proxy_a_spoofed_forwarded_address_is_ignored(app):
    create_admin(app.extensions["gateway"], "eko", PASSWORD, "admin", language="en")
    answers = []
    for n in range(throttle.MAX_FAILURES + 3):
        # A new made-up X-Forwarded-For on every guess, to look like a new client each time.
        page = browser(app, ATTACKER, forwarded_for=f"192.0.2.{n + 1}")
        answers.append(attempt(page, "eko", f"guess-{n}").status_code)
    assert answers[throttle.MAX_FAILURES:] == [429] * 3
    assert checked_wrong_passwords(app) == throttle.MAX_FAILURES
