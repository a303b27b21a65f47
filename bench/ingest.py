"""Ingest: the whole create path (auth, validation, store, audit, enqueue) against a bare
Flask JSON endpoint, both under gunicorn with the same settings, at 16 connections."""

from __future__ import annotations

from .load import wrk_post
from .servers import gunicorn

CONNECTIONS = 16


def run(setup, stack, seconds: int) -> list[dict]:
    from plugins.medicine_delivery.service import EXAMPLE

    body = dict(EXAMPLE)
    bare = gunicorn("bench.bare:app", 2, stack, setup.log)
    wrk_post(bare, "/ping", body, {}, 2, CONNECTIONS, setup.workdir)          # warm-up
    baseline = wrk_post(bare, "/ping", body, {}, seconds, CONNECTIONS, setup.workdir)
    node = setup.serve(workers=2)
    path = "/api/v1/services/medicine_delivery/requests"
    headers = {"Authorization": f"Bearer {setup.key}"}
    wrk_post(node, path, body, headers, 2, CONNECTIONS, setup.workdir, "prescription_id")
    measured = wrk_post(node, path, body, headers, seconds, CONNECTIONS, setup.workdir,
                        "prescription_id")
    return [{
        "name": "ingest: create path vs bare Flask endpoint (gunicorn 2 sync, 16 conns)",
        "value": f"{measured['rps']:.0f} req/s, p50 {measured['p50']:.1f} ms, "
                 f"p99 {measured['p99']:.1f} ms",
        "baseline": f"{baseline['rps']:.0f} req/s, p50 {baseline['p50']:.1f} ms, "
                    f"p99 {baseline['p99']:.1f} ms",
        "ratio": measured["rps"] / baseline["rps"],
        "target": "≥ 0.5× and p99 ≤ 25 ms",
        "met": measured["rps"] / baseline["rps"] >= 0.5 and measured["p99"] <= 25,
        "notes": f"non-2xx answers: {measured['non_2xx']}",
    }]
