"""Latency: a steady 100 requests per second for a while; the share booked at the simulator
within 1 s of acceptance, and p50/p95/p99 of that time. Two workers.

"Accepted" is the request's creation time and "booked" the moment its courier attempt was
recorded as booked, both written by the gateway in the database.
"""

from __future__ import annotations

import statistics
import time

from sqlalchemy import select

from .load import paced, session

RATE = 100


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def run(setup, node: str, seconds: int) -> list[dict]:
    from gateway.models import CourierAttempt, ServiceRequest
    from plugins.medicine_delivery.service import EXAMPLE

    workers = [setup.spawn("gateway", "worker", "--no-sweep") for _ in range(2)]
    time.sleep(2)
    clients = [session() for _ in range(8)]
    stamp = time.time_ns()

    def send(n):
        response = clients[n % 8].post(
            f"{node}/api/v1/services/medicine_delivery/requests", timeout=10,
            json={**EXAMPLE, "prescription_id": f"RX-L{stamp}-{n}"},
            headers={"Authorization": f"Bearer {setup.key}"})
        return response.json().get("id") if response.status_code == 202 else None

    began = time.monotonic()
    sent = paced(send, RATE, seconds)
    sending = time.monotonic() - began    # longer than ``seconds`` when intake falls behind
    ids = [outcome for _when, outcome in sent if outcome]
    time.sleep(5)                                    # the last ones have time to be booked
    for process in workers:
        from .servers import stop

        stop(process)
    with setup.gateway.db.read() as db:
        rows = db.execute(
            select(ServiceRequest.created_at, CourierAttempt.updated_at)
            .join(CourierAttempt, CourierAttempt.request_id == ServiceRequest.id)
            .where(ServiceRequest.id.in_(ids), CourierAttempt.state == "booked")).all()
    delays = sorted((booked - created).total_seconds() for created, booked in rows)
    if not delays:
        raise RuntimeError(f"none of {len(ids)} accepted requests was booked "
                           f"({len(sent)} sent); see the processes log")
    within = sum(d <= 1.0 for d in delays) / len(ids) if ids else 0.0
    achieved = len(sent) / sending
    return [{
        "name": f"latency: {RATE} req/s for {seconds} s, booked within 1 s (2 workers)",
        "value": f"{within:.1%} within 1 s; p50 {_quantile(delays, 50) * 1000:.0f} ms, "
                 f"p95 {_quantile(delays, 95) * 1000:.0f} ms, "
                 f"p99 {_quantile(delays, 99) * 1000:.0f} ms",
        "baseline": f"{achieved:.0f} req/s achieved of {RATE}, {len(ids)} accepted, "
                    f"{len(delays)} booked 5 s after the last",
        "ratio": within, "target": "≥ 99 % within 1 s",
        "met": within >= 0.99, "notes": ""}]
