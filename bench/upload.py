"""Upload: a 5,000-row spreadsheet of medicine deliveries, from the upload through its preview
to every request made, against the same 5,000 requests sent one by one to the API, and
against a 500-row file (does the time grow with the rows, and does memory stay flat?).

Everything runs in this process, one thing at a time, on the setup's database and Redis:
the console's upload and confirm through Flask's test client as an agency's staff, the jobs
with a real rq worker (the uploads queue; the dispatch and notices of the requests made are
not part of it), the API calls through the test client too. Peak memory is Python's own allocations
(tracemalloc) during each run, so both sides pay its overhead alike.
"""

from __future__ import annotations

import csv
import io
import os
import time
import tracemalloc

ROWS = int(os.environ.get("BENCH_UPLOAD_ROWS", "5000"))
SMALL = ROWS // 10
UPLOAD_URL = "/console/services/medicine_delivery/upload"


def _file(prefix: str, count: int) -> bytes:
    from gateway.console.request_form import values_of
    from gateway.console.spreadsheet import columns
    from plugins.medicine_delivery.schemas import MedicineDeliveryRequestSchema
    from plugins.medicine_delivery.service import EXAMPLE

    names = [c.path for c in columns(MedicineDeliveryRequestSchema(), "id")]
    values = values_of(EXAMPLE)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(names)
    for number in range(count):
        row = {**values, "prescription_id": f"{prefix}-{number:05d}"}
        writer.writerow([row.get(name, "") for name in names])
    return out.getvalue().encode("utf-8-sig")


def _work(app) -> None:
    from redis import Redis
    from rq import Queue

    from gateway.queues import QueueNames
    from gateway.testing import ThreadSafeWorker

    with app.app_context():
        connection = Redis.from_url(app.extensions["gateway"].redis_url)
        ThreadSafeWorker([Queue(QueueNames.UPLOADS, connection=connection)],
                         connection=connection).work(burst=True, with_scheduler=False,
                                                     logging_level="WARNING")
        connection.close()


def _measured(action) -> dict:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        extra = action() or {}
    finally:
        seconds = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"seconds": seconds, "peak_mb": peak / 1e6, **extra}


def _upload(app, console, data: bytes) -> dict:
    from gateway.models import Upload

    console.get(UPLOAD_URL)
    started = time.perf_counter()
    sent = console.post(UPLOAD_URL, {"file": (io.BytesIO(data), "rows.csv")},
                        content_type="multipart/form-data")
    upload_request = time.perf_counter() - started
    assert sent.status_code == 302, sent.status_code
    url = sent.headers["Location"]
    started = time.perf_counter()
    _work(app)
    preview = time.perf_counter() - started
    console.get(url)
    console.post(url + "/confirm")
    started = time.perf_counter()
    _work(app)
    create = time.perf_counter() - started
    with app.extensions["gateway"].db.read() as session:
        upload = session.get(Upload, url.rsplit("/", 1)[1])
        made, bad = upload.created_rows, upload.invalid_rows + upload.failed_rows
    return {"request": upload_request, "preview": preview, "create": create, "made": made,
            "bad": bad}


def _api_calls(app, key: str, count: int) -> dict:
    from plugins.medicine_delivery.service import EXAMPLE

    client, accepted = app.test_client(), 0
    for number in range(count):
        answer = client.post("/api/v1/services/medicine_delivery/requests",
                             json={**EXAMPLE, "prescription_id": f"API-{number:05d}"},
                             headers={"Authorization": f"Bearer {key}"})
        accepted += answer.status_code == 202
    return {"made": accepted}


def run(setup) -> list[dict]:
    from gateway.agencies import create_agency
    from gateway.console.users import create_admin
    from gateway.testing import ConsoleClient

    app, gateway = setup.app, setup.gateway
    agency, key = create_agency(gateway, f"Bench uploads {time.time_ns()}",
                                ["medicine_delivery"], key_type="test", actor="bench")
    create_admin(gateway, "bench-clerk", "bench clerk password", "agency_staff",
                 language="id", agency=agency.id, key_type="test")
    console = ConsoleClient.sign_in(app, "bench-clerk", "bench clerk password",
                                    "agency_staff")
    small_file, big_file = _file("U500", SMALL), _file("U5000", ROWS)
    baseline = _measured(lambda: _api_calls(app, key, ROWS))
    print(f"  {ROWS} API calls: {baseline}", flush=True)
    small = _measured(lambda: _upload(app, console, small_file))
    print(f"  {SMALL} rows: {small}", flush=True)
    big = _measured(lambda: _upload(app, console, big_file))
    print(f"  {ROWS} rows: {big}", flush=True)
    assert big["made"] == ROWS and small["made"] == SMALL and baseline["made"] == ROWS, \
        (big, small, baseline)
    again = _measured(lambda: _upload(app, console, big_file))      # nothing new is made

    def phases(m):
        return (f"{m['seconds']:.1f} s (upload request {m['request'] * 1000:.0f} ms, preview "
                f"{m['preview']:.1f} s, create {m['create']:.1f} s), peak {m['peak_mb']:.0f} MB")

    return [{
        "name": f"upload: {ROWS:,} rows, upload to every request made, vs {ROWS:,} API calls",
        "value": phases(big),
        "baseline": f"{baseline['seconds']:.1f} s, peak {baseline['peak_mb']:.0f} MB",
        "ratio": big["seconds"] / baseline["seconds"],
        "target": "≤ 2× the API calls; upload request ≤ 5 s",
        "met": big["seconds"] <= 2 * baseline["seconds"] and big["request"] <= 5,
        "notes": f"{big['made']} made, {big['bad']} refused; the same file again: "
                 f"{again['made']} made in {again['seconds']:.1f} s",
    }, {
        "name": f"upload: peak memory, {ROWS:,} rows vs {SMALL} rows",
        "value": f"{big['peak_mb']:.0f} MB ({phases(big).split(', peak')[0]})",
        "baseline": f"{small['peak_mb']:.0f} MB ({phases(small).split(', peak')[0]})",
        "ratio": big["peak_mb"] / small["peak_mb"],
        "target": "≤ 10× for 10× the rows, and ≤ 256 MB",
        "met": big["peak_mb"] <= 10 * small["peak_mb"] and big["peak_mb"] <= 256,
        "notes": "",
    }]
