"""Where one create's CPU goes: ``bench/run breakdown``.

The create path runs in this process (Flask's WSGI app called directly, no HTTP server) on
the run's database and Redis, one request at a time, each stored in its own transaction (a
group of one, as under light load). Each phase's entry point is wrapped by a timer of the
thread's CPU time (``time.thread_time``); a phase's figure is its own time, without the
phases it calls (the audit link that the notice planning appends counts as audit, not
notices; the SQL that a query's autoflush sends counts as SQL writes). "framework" is what
is left of the WSGI call: Flask, werkzeug, the error and log layers. The wrappers are set
here only, for the measurement; nothing in the gateway knows.

The baseline (same run) is the bare endpoint of ``bench/bare.py`` called the same way: what
any Flask JSON view costs on this machine.
"""

from __future__ import annotations

import functools
import io
import json
import time
from collections import defaultdict

#: (phase, module, attribute path of an entry point): a phase may have several
PHASES = [
    ("config check", "gateway.core", "Gateway.refresh_config"),
    ("parse JSON", "gateway.api.v1", "_json_body"),
    ("validate", "gateway.intake", "_checked"),
    ("seal personal fields", "gateway.crypto", "Vault.seal"),
    ("store (request, events, links)", "gateway.intake", "_store_in"),
    ("SQL writes (flush)", "sqlalchemy.orm", "Session.flush"),
    ("commit", "sqlalchemy.orm", "Session.commit"),
    ("audit chain", "gateway.audit", "append"),
    ("notices", "gateway.notices", "plan_notices"),
    ("enqueue (Redis)", "gateway.batch", "_submit"),
    ("enqueue (Redis)", "gateway.queues", "enqueue_new_jobs"),
    ("enqueue (Redis)", "gateway.queues", "enqueue_job"),
    ("answer (dump, JSON)", "gateway.api.v1", "_answer"),
]


class PhaseClock:
    """Own CPU time per phase, on one thread, for nested wrapped calls."""

    def __init__(self):
        self.own = defaultdict(float)
        self._stack: list[list] = []

    def wrap(self, name, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = time.thread_time()
            self._stack.append([name, 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, inner = self._stack.pop()
                spent = time.thread_time() - start
                self.own[name] += spent - inner
                if self._stack:
                    self._stack[-1][1] += spent
        return timed


def _install(clock: PhaseClock, app):
    """Wrap every phase's entry point; :return: a function that puts them back."""
    import importlib

    from gateway import gate

    undo = []
    for name, module_name, path in PHASES:
        owner = importlib.import_module(module_name)
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = owner.__dict__[attribute]
        setattr(owner, attribute, clock.wrap(name, original))
        undo.append((owner, attribute, original))
    funcs = app.before_request_funcs[None]
    kept, wsgi = list(funcs), app.wsgi_app
    funcs[:] = [clock.wrap("auth and rate limit", f) if f is gate._begin_request else f
                for f in funcs]
    app.wsgi_app = clock.wrap("total", app.wsgi_app)

    def uninstall():
        for owner, attribute, original in undo:
            setattr(owner, attribute, original)
        funcs[:] = kept
        app.wsgi_app = wsgi
    return uninstall


def _call(app, path: str, body: bytes, headers: dict) -> int:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", "SERVER_PROTOCOL": "HTTP/1.1",
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    }
    status = []
    chunks = app(environ, lambda s, h, e=None: status.append(s))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return int(status[0].split()[0])


def measure(app, path: str, body: dict, headers: dict, count: int, unique: str | None):
    """CPU ms per call of ``app`` (this thread), and the run's phase clock."""
    def one(i):
        sent = dict(body)
        if unique:
            sent[unique] = f"{body[unique]}-{time.monotonic_ns()}-{i}"
        status = _call(app, path, json.dumps(sent).encode(), headers)
        if status >= 300:
            raise RuntimeError(f"{path} answered {status}")

    for i in range(50):   # warm-up: caches, pools, the first transaction's head row
        one(i)
    start = time.thread_time()
    for i in range(count):
        one(i)
    return (time.thread_time() - start) * 1000 / count


def run(setup, database: str, count: int = 500) -> list[dict]:
    from bench.bare import app as bare_app
    from plugins.medicine_delivery.service import EXAMPLE

    gateway = setup.gateway
    gateway.writer.max_batch = 1          # one create, in this thread
    path = "/api/v1/services/medicine_delivery/requests"
    headers = {"Authorization": f"Bearer {setup.key}"}
    baseline = measure(bare_app, "/ping", EXAMPLE, {}, count, None)
    plain = measure(setup.app, path, EXAMPLE, headers, count, "prescription_id")
    clock = PhaseClock()
    uninstall = _install(clock, setup.app)
    try:
        measure(setup.app, path, EXAMPLE, headers, 50, "prescription_id")
        clock.own.clear()
        measure(setup.app, path, EXAMPLE, headers, count, "prescription_id")
    finally:
        uninstall()
    names = dict.fromkeys(["auth and rate limit", *(name for name, _, _ in PHASES)])
    parts = [(name, clock.own.get(name, 0.0)) for name in names]
    parts.append(("framework (Flask, werkzeug, logs)", clock.own["total"]))
    total = sum(spent for _, spent in parts)
    per_call = {name: spent * 1000 / count for name, spent in parts}
    breakdown = ", ".join(f"{name} {ms:.2f}" for name, ms in per_call.items())
    return [{
        "name": "breakdown: CPU ms of one create (in process, one at a time)",
        "value": f"{plain:.2f} ms",
        "baseline": f"{baseline:.2f} ms (bare Flask JSON view)",
        "ratio": plain / baseline,
        "target": "—",
        "met": True,
        "notes": f"{database}: {breakdown} (ms per create, own time of each phase, "
                 f"under the timers: {total * 1000 / count:.2f} ms)",
    }]
