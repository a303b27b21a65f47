"""Growth: list, filter and status reads through the API with a million stored requests in
PostgreSQL (p99), against the same reads on the 10,000 written before them (the benchmark's
database is its own: nothing else is in it).

The rows are written with COPY (synthetic, a year of one agency's history: services,
statuses, providers); reads go over HTTP to a gunicorn node like any agency's.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from .load import session

STATUSES = ("delivered",) * 8 + ("cancelled", "failed", "no_driver")
SERVICES = ("medicine_delivery", "umkm_pickup", "tourism_transport")
CALLS = 300


def _p99(measure) -> float:
    times = []
    for n in range(CALLS):
        started = time.perf_counter()
        measure(n)
        times.append(time.perf_counter() - started)
    return statistics.quantiles(times, n=100, method="inclusive")[98] * 1000


#: the rows the baseline reads run at (the benchmark's own database holds no others)
BASELINE_ROWS = 10_000


def _reads(node: str, key: str, ids: list[str]) -> dict[str, float]:
    client = session()
    headers = {"Authorization": f"Bearer {key}"}

    def get(path):
        response = client.get(node + path, headers=headers, timeout=10)
        response.raise_for_status()

    return {
        "list": _p99(lambda n: get("/api/v1/requests?limit=50")),
        "filter": _p99(lambda n: get("/api/v1/requests?status=no_driver&service=umkm_pickup"
                                     "&limit=50")),
        "status": _p99(lambda n: get(f"/api/v1/requests/{ids[n % len(ids)]}")),
    }


def _fill(setup, rows: int, seed: int) -> list[str]:
    from sqlalchemy import select

    from gateway.models import ApiKey

    with setup.gateway.db.read() as db:
        key = db.execute(select(ApiKey).order_by(ApiKey.created_at.desc())).scalars().first()
        agency_id, key_id = key.agency_id, key.id
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    sample = []
    columns = ("id", "agency_id", "api_key_id", "service", "key_type", "status",
               "external_reference", "request_fingerprint", "correlation_id", "provider",
               "created_at", "updated_at", "pin_failures")
    raw = setup.gateway.db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY service_requests ({', '.join(columns)}) FROM STDIN") as copy:
            for n in range(rows):
                request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                created = now - timedelta(seconds=rng.randrange(365 * 86400))
                copy.write_row((request_id, agency_id, key_id, rng.choice(SERVICES), "test",
                                rng.choice(STATUSES), f"REF-{seed}-{n}", "0" * 64,
                                uuid.uuid4().hex,
                                "gosend_sandbox", created, created + timedelta(minutes=40), 0))
                if n % (rows // 1000 or 1) == 0:
                    sample.append(request_id)
        cursor.execute("ANALYZE service_requests")
        raw.commit()
    finally:
        raw.close()
    return sample


def run(setup, node: str, rows: int) -> list[dict]:
    from sqlalchemy import func, select

    from gateway.models import ServiceRequest

    existing = _fill(setup, BASELINE_ROWS, seed=1)   # the benchmark's database starts empty
    with setup.gateway.db.read() as db:
        before_count = db.execute(select(func.count()).select_from(ServiceRequest)).scalar()
    before = _reads(node, setup.key, existing)
    started = time.monotonic()
    sample = _fill(setup, rows, seed=20261128)
    fill_seconds = time.monotonic() - started
    after = _reads(node, setup.key, sample)
    out = []
    for read in ("list", "filter", "status"):
        out.append({
            "name": f"growth: {read} read p99 at {rows:,} rows (PostgreSQL)",
            "value": f"p99 {after[read]:.1f} ms",
            "baseline": f"p99 {before[read]:.1f} ms at {before_count:,} rows",
            "ratio": after[read] / before[read], "target": "p99 ≤ 50 ms",
            "met": after[read] <= 50,
            "notes": f"{rows:,} rows written by COPY in {fill_seconds:.0f} s" if read == "list"
            else ""})
    return out
