"""Helpers for testing the gateway and its plugins against real parts.

Everything here starts real things on 127.0.0.1: HTTP servers in threads (the gateway
itself, a courier simulator, an agency's callback receiver), and a real rq worker that
drains the queues in this process. Nothing is monkeypatched. Plugin authors get these as
pytest fixtures from :mod:`gateway.pytest_plugin`.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from flask import Flask, request
from redis import Redis
from rq import Queue, SimpleWorker
from werkzeug.serving import make_server

from .queues import QueueNames
from .rqthreads import InThread


class ServerThread:
    """A WSGI app served over real HTTP on a free port of 127.0.0.1, in a daemon thread.

    The server looks for a stop every 50 ms (``serve_forever``'s default is every 0.5 s,
    which each test serving an app or a simulator waited out on leaving)."""

    POLL_SECONDS = 0.05

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": self.POLL_SECONDS})

    def __enter__(self) -> ServerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class ReceivedCall:
    headers: dict
    body: bytes


@dataclass
class CallbackReceiver:
    """An agency's callback endpoint that records what it receives.

    ``answers`` are HTTP statuses to give, one per call, before answering 200 for good.
    """

    answers: list[int] = field(default_factory=list)
    received: list[ReceivedCall] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask("callback-receiver")

        @app.post("/callback")
        def callback():
            self.received.append(ReceivedCall(dict(request.headers), request.get_data()))
            status = self.answers.pop(0) if self.answers else 200
            return {"ok": status < 300}, status

        return app


class ThreadSafeWorker(InThread, SimpleWorker):
    """A ``SimpleWorker`` that can run in any thread (``gateway.rqthreads``), so tests can
    drain from a background thread.

    It does not listen on rq's command channel (``rq.command.send_shutdown_command`` and
    the like, for long-running workers): a drain ends by itself when the queues are empty.
    rq listens in a thread that its teardown stops with ``join(timeout=1)``, and that
    thread often sits out the whole second; tests drain thousands of times."""

    def subscribe(self) -> None:
        pass


def drain(app, queues: Sequence[str] | None = None) -> None:
    """Work every queue (or only those named) empty with a real rq ``SimpleWorker`` in this
    process.

    Retries run too when their interval is 0 (no scheduler is needed then).
    """
    with app.app_context():
        connection = Redis.from_url(app.extensions["gateway"].redis_url)
        queues = [Queue(name, connection=connection) for name in queues or QueueNames.all()]
        ThreadSafeWorker(queues, connection=connection).work(burst=True, with_scheduler=False,
                                                         logging_level="WARNING")
        connection.close()


def wait_for_status(app, request_id: str, wanted: str | set[str], timeout: float = 20.0,
                    interval: float = 0.1) -> str:
    """Drain the queues until the request reaches ``wanted``; return the status reached.

    :raises AssertionError: when it has not after ``timeout`` seconds
    """
    from .models import ServiceRequest

    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    gateway = app.extensions["gateway"]
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        drain(app)
        with gateway.db.read() as session:
            status = session.get(ServiceRequest, request_id).status
        if status in wanted:
            return status
        time.sleep(interval)
    raise AssertionError(f"request {request_id} is {status}, not {sorted(wanted)}, "
                         f"after {timeout}s")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgencyClient:
    """A Flask test client that sends one agency's API key with every call.

    :ivar key: the key (``gw_test_...`` or ``gw_live_...``)
    :ivar agency: the :class:`gateway.models.Agency`
    """

    def __init__(self, client, key: str, agency):
        self.client, self.key, self.agency = client, key, agency

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.key}", **(headers or {})}

    def get(self, url, headers=None, **kw):
        return self.client.get(url, headers=self._headers(headers), **kw)

    def post(self, url, headers=None, **kw):
        return self.client.post(url, headers=self._headers(headers), **kw)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class ConsoleClient:
    """A Flask test client signed in to the console through its real sign-in form; it
    sends the page's CSRF token with every form it posts.

    :ivar username: who signed in (None before :meth:`sign_in`)
    :ivar role: their console role, when known
    """

    def __init__(self, client, username: str | None = None, role: str | None = None):
        self.client, self.username, self.role = client, username, role
        self.csrf: str | None = None

    def get(self, url, **kw):
        response = self.client.get(url, **kw)
        found = _CSRF.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, url, data=None, csrf: bool = True, **kw):
        """Post a form with the last page's CSRF token (``csrf=False``: without one, as a
        forged form would come)."""
        if not csrf:
            return self.client.post(url, data=data or {}, **kw)
        if self.csrf is None:
            self.get("/console/sign-in")
        return self.client.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kw)

    @classmethod
    def sign_in(cls, app, username: str, password: str,
                role: str | None = None) -> ConsoleClient:
        """Sign in as an existing console user; :raises AssertionError: if refused."""
        console = cls(app.test_client(), username, role)
        console.get("/console/sign-in")
        response = console.post("/console/sign-in", {"username": username,
                                                      "password": password})
        assert response.status_code == 302, f"sign-in refused ({response.status_code})"
        console.get("/console/dashboard")
        return console


class Worker:
    """The queues of one app, worked in this process: ``drain()`` runs every job that is
    due, ``wait_for_status()`` keeps draining until a request gets somewhere."""

    def __init__(self, app):
        self.app = app

    def drain(self) -> None:
        drain(self.app)

    def wait_for_status(self, request_id: str, wanted: str | set[str],
                        timeout: float = 20.0) -> str:
        return wait_for_status(self.app, request_id, wanted, timeout=timeout)
