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
import threading
import time
from collections import defaultdict

#: (phase, module, attribute path of an entry point): a phase may have several (and entry
#: points of earlier versions, to compare before and after a change)
PHASES = [
    ("config check", "gateway.core", "Gateway.refresh_config"),
    ("parse JSON", "gateway.api.v1", "_json_body"),
    ("validate", "gateway.intake", "_checked"),
    ("seal personal fields", "gateway.crypto", "Vault.seal"),
    ("store (request, events, links)", "gateway.intake", "_store"),
    ("store (request, events, links)", "gateway.intake", "_store_in"),
    ("SQL writes (flush)", "sqlalchemy.orm", "Session.flush"),
    ("commit", "sqlalchemy.orm", "Session.commit"),
    ("audit chain", "gateway.audit", "append"),
    ("notices", "gateway.notices", "plan_notices"),
    ("enqueue (Redis)", "gateway.batch", "_submit"),
    ("enqueue (Redis)", "gateway.queues", "enqueue_new_jobs"),
    ("enqueue (Redis)", "gateway.queues", "enqueue_job"),
    ("answer (dump, JSON)", "gateway.api.v1", "_answer"),
    ("answer (dump, JSON)", "gateway.api.v1", "_detail"),
    ("answer (dump, JSON)", "gateway.api.v1", "jsonify"),
]


class PhaseClock:
    """Own CPU time per phase, for nested wrapped calls, in any thread (each thread keeps
    its own stack of phases; the writer thread of a group commit times its phases too)."""

    def __init__(self):
        self.own = defaultdict(float)
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, name, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            start = time.thread_time()
            stack.append([name, 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, inner = stack.pop()
                spent = time.thread_time() - start
                with self._lock:
                    self.own[name] += spent - inner
                if stack:
                    stack[-1][1] += spent
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
        original = owner.__dict__.get(attribute)
        if original is None:        # not in this version of the gateway
            continue
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


def measure(app, path: str, body: dict, headers: dict, count: int, unique: str | None,
            threads: int = 1, started=lambda: None) -> float:
    """CPU ms per call of ``app``: ``count`` calls, from ``threads`` threads at once (the
    process's CPU time then, all its threads included)."""
    def one(i):
        sent = dict(body)
        if unique:
            sent[unique] = f"{body[unique]}-{time.monotonic_ns()}-{i}"
        status = _call(app, path, json.dumps(sent).encode(), headers)
        if status >= 300:
            raise RuntimeError(f"{path} answered {status}")

    def calls(first: int, n: int):
        for i in range(first, first + n):
            one(i)

    calls(0, 50)          # warm-up: caches, pools, the first transaction's head row
    started()
    if threads == 1:
        start = time.thread_time()
        calls(0, count)
        return (time.thread_time() - start) * 1000 / count
    each = count // threads
    workers = [threading.Thread(target=calls, args=(n * each, each)) for n in range(threads)]
    start = time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.process_time() - start) * 1000 / (each * threads)


def run(setup, database: str, count: int = 800, threads: int = 8) -> list[dict]:
    from bench.bare import app as bare_app

    grouped = hasattr(setup.gateway, "writer")
    rows = [_run(setup, database, count, 1, bare_app)]
    if grouped:
        rows.append(_run(setup, database, count, threads, bare_app))
    return rows


def _run(setup, database: str, count: int, threads: int, bare_app) -> dict:
    from plugins.medicine_delivery.service import EXAMPLE

    if threads == 1 and hasattr(setup.gateway, "writer"):
        setup.gateway.writer.max_batch = 1      # one create, in this thread
    elif threads > 1:
        setup.gateway.writer.max_batch = setup.gateway.settings["api"]["group_commit_max"]
    path = "/api/v1/services/medicine_delivery/requests"
    headers = {"Authorization": f"Bearer {setup.key}"}
    baseline = measure(bare_app, "/ping", EXAMPLE, {}, count, None, threads)
    plain = measure(setup.app, path, EXAMPLE, headers, count, "prescription_id", threads)
    clock = PhaseClock()
    uninstall = _install(clock, setup.app)
    try:
        timed = measure(setup.app, path, EXAMPLE, headers, count, "prescription_id", threads,
                        started=clock.own.clear)
    finally:
        uninstall()
    names = dict.fromkeys(["auth and rate limit", *(name for name, _, _ in PHASES)])
    parts = [(name, clock.own.get(name, 0.0) * 1000 / count) for name in names]
    parts.append(("framework (Flask, werkzeug, logs)", clock.own["total"] * 1000 / count))
    if threads > 1:
        parts.append(("threads and the writer's loop", timed - sum(ms for _, ms in parts)))
    breakdown = ", ".join(f"{name} {ms:.2f}" for name, ms in parts)
    how = "one at a time" if threads == 1 else f"{threads} at a time, group commit"
    return {
        "name": f"breakdown ({database}): CPU ms per create, in process, {how}",
        "value": f"{plain:.2f} ms",
        "baseline": f"{baseline:.2f} ms (bare Flask JSON view, the same way)",
        "ratio": plain / baseline,
        "target": "—",
        "met": True,
        "notes": f"{database}, {how}: {breakdown} (ms per create, own CPU of each phase; "
                 f"under the timers: {timed:.2f} ms)",
    }
