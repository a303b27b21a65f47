"""Requests by spreadsheet: a template drawn from the service's schema, an upload previewed
row by row through the API's own intake, confirmed, made in a background job, idempotently
(the same row uploaded again is the same request), with a formula-safe result file."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import openpyxl
import pytest
from redis import Redis
from rq import Queue

from gateway.agencies import create_agency, issue_key
from gateway.console.spreadsheet import SHEET_ROWS, columns
from gateway.models import Upload
from gateway.queues import QueueNames
from gateway.testing import ThreadSafeWorker
from plugins.medicine_delivery.schemas import MedicineDeliveryRequestSchema
from tests.conftest import bearer
from tests.console.page import parse
from tests.console.test_agency_staff import staff

UPLOAD_URL = "/console/services/medicine_delivery/upload"
#: data rows start below the template's two header rows
FIRST_DATA_ROW = 3


def good_row(number: int) -> dict:
    return {"prescription_id": f"RX-UP-{number:04d}", "pickup_location_id": "puskesmas-sobo",
            "patient.name": "Siti Aminah", "patient.phone": "+6281234567890",
            "patient.nik": "3510011203650002",
            "patient.address": "Jl. Letjen S. Parman No. 5, Sobo, Banyuwangi",
            "patient.location.lat": "-8.2192", "patient.location.lng": "114.3691",
            "items.0.name": "Amlodipine 10 mg", "items.0.quantity": "30",
            "pharmacist_counselled": "ya", "notes_for_courier": "Rumah pagar hijau"}


#: three rows spoiled, each in one column: (index in the file, column, bad value)
BAD = {9: ("items.0.quantity", "tiga puluh"), 49: ("patient.location.lat", ""),
       119: ("pickup_location_id", "nowhere")}


def two_hundred_rows(prefix: str = "RX-UP") -> list[dict]:
    rows = []
    for index in range(200):
        row = good_row(index)
        row["prescription_id"] = f"{prefix}-{index:04d}"
        if index in BAD:
            column, value = BAD[index]
            row[column] = value
        rows.append(row)
    return rows


def header() -> list[str]:
    return [c.path for c in columns(MedicineDeliveryRequestSchema(), "en")]


def as_csv(rows: list[dict], separator: str = ",", encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator)
    names = header()
    writer.writerow(["label"] * len(names))
    writer.writerow(names)
    for row in rows:
        writer.writerow([row.get(name, "") for name in names])
    return out.getvalue().encode(encoding)


def as_xlsx(rows: list[dict]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    names = header()
    sheet.append(["label"] * len(names))
    sheet.append(names)
    for row in rows:
        sheet.append([_typed(row.get(name, "")) for name in names])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _typed(value: str):
    """As Excel keeps what a clerk types: numbers as numbers."""
    try:
        return int(value) if value.isdigit() and len(value) < 10 else float(value)
    except ValueError:
        return value or None


@pytest.fixture
def puskesmas(app):
    gateway = app.extensions["gateway"]
    agency, _live = create_agency(gateway, "Puskesmas Upload", ["medicine_delivery"],
                                  actor="test")
    return {"id": agency.id, "test": issue_key(gateway, agency.id, "test", actor="test")}


def work_uploads(app) -> None:
    """Run the upload jobs with a real rq worker (their own queue; dispatch waits)."""
    with app.app_context():
        connection = Redis.from_url(app.extensions["gateway"].redis_url)
        ThreadSafeWorker([Queue(QueueNames.UPLOADS, connection=connection)],
                         connection=connection).work(burst=True, with_scheduler=False,
                                                     logging_level="WARNING")
        connection.close()


def upload(console, data: bytes, name: str = "permintaan.csv"):
    console.get(UPLOAD_URL)
    return console.post(UPLOAD_URL, {"file": (io.BytesIO(data), name)},
                        content_type="multipart/form-data")


def previewed(app, console, data: bytes, name: str = "permintaan.csv") -> str:
    sent = upload(console, data, name)
    assert sent.status_code == 302, sent.get_data(as_text=True)[:3000]
    url = sent.headers["Location"]
    work_uploads(app)
    return url


def row_errors(page: str) -> set[tuple[int, str]]:
    return {(int(r), c) for r, c in re.findall(r'data-row="(\d+)" data-column="([^"]*)"', page)}


def api_requests(app, key) -> list[dict]:
    client, found, cursor = app.test_client(), [], None
    while True:
        answer = client.get("/api/v1/requests", headers=bearer(key),
                            query_string={"limit": 100, **({"cursor": cursor} if cursor else {})})
        body = answer.get_json()
        found += body["requests"]
        cursor = body.get("next_cursor")
        if not cursor:
            return found


EXPECTED_ERRORS = {(index + FIRST_DATA_ROW, column) for index, (column, _v) in BAD.items()}


def test_template_columns_are_the_schemas_fields_with_labels_in_the_readers_language(
        app, puskesmas):
    console = staff(app, puskesmas["id"], language="id")
    sheet = console.get("/console/services/medicine_delivery/template.csv")
    assert sheet.status_code == 200 and sheet.mimetype == "text/csv"
    labels, names = list(csv.reader(io.StringIO(sheet.get_data(as_text=True).lstrip("\ufeff"))))
    schema = MedicineDeliveryRequestSchema()
    for name, item in schema.fields.items():
        if item.dump_only:
            continue
        assert any(n == name or n.startswith(name + ".") for n in names), name
    assert "patient.location.lat" in names and "items.0.quantity" in names
    assert f"items.{SHEET_ROWS - 1}.name" in names and f"items.{SHEET_ROWS}.name" not in names
    assert "Nomor resep *" in labels and "Pasien · NIK *" in labels
    workbook = console.client.get("/console/services/medicine_delivery/template.xlsx")
    assert workbook.status_code == 200 and workbook.data.startswith(b"PK\x03\x04")
    sheet_ = openpyxl.load_workbook(io.BytesIO(workbook.data), read_only=True).worksheets[0]
    rows = [list(r) for r in sheet_.iter_rows(values_only=True)]
    assert rows[0] == labels and rows[1] == names


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_200_row_file_with_3_bad_rows_makes_197_requests_once(app, puskesmas, kind):
    console = staff(app, puskesmas["id"])
    rows = two_hundred_rows()
    data = as_csv(rows) if kind == "csv" else as_xlsx(rows)
    url = previewed(app, console, data, f"permintaan.{kind}")
    page = console.get(url).get_data(as_text=True)
    assert row_errors(page) == EXPECTED_ERRORS, page[:4000]
    assert 'data-status="previewed"' in page
    assert api_requests(app, puskesmas["test"]) == []       # nothing made before confirming
    confirmed = console.post(url + "/confirm")
    assert confirmed.status_code == 302
    page = console.get(url).get_data(as_text=True)
    assert "<progress" in page and 'http-equiv="refresh"' in page    # works without JS
    work_uploads(app)
    page = console.get(url).get_data(as_text=True)
    assert 'data-status="done"' in page and 'http-equiv="refresh"' not in page
    made = api_requests(app, puskesmas["test"])
    assert len(made) == 197
    assert {r["reference"] for r in made} == {
        f"RX-UP-{i:04d}" for i in range(200) if i not in BAD}
    # the same file again: previewed, confirmed, and nothing new is made
    again = previewed(app, console, data, f"lagi.{kind}")
    console.get(again)
    console.post(again + "/confirm")
    work_uploads(app)
    assert "Already made before: 197" in console.get(again).get_data(as_text=True)
    assert len(api_requests(app, puskesmas["test"])) == 197
    # the result file: one line per row, its request id or its error
    result = console.get(url + "/result.csv").get_data(as_text=True).lstrip("\ufeff")
    lines = list(csv.reader(io.StringIO(result)))[1:]
    assert len(lines) == 200
    ids = {r["id"] for r in made}
    for line in lines:
        number = int(line[0])
        if number - FIRST_DATA_ROW in BAD:
            assert line[2] == "invalid" and BAD[number - FIRST_DATA_ROW][0] in line[5]
        else:
            assert line[2] == "created" and line[3] in ids


def test_semicolon_csv_from_indonesian_excel_and_utf8_without_bom(app, puskesmas):
    console = staff(app, puskesmas["id"])
    rows = [good_row(1), good_row(2)]
    rows[1]["patient.location.lat"] = "-8,2192"            # a decimal comma, as typed
    url = previewed(app, console, as_csv(rows, ";", "utf-8"))
    page = console.get(url).get_data(as_text=True)
    assert row_errors(page) == set() and 'data-status="previewed"' in page
    assert "2 rows can be made" in page


def test_formula_cells_are_text_and_neutralised_in_the_result_file(app, puskesmas):
    console = staff(app, puskesmas["id"])
    row = good_row(1)
    row["prescription_id"] = '=HYPERLINK("http://evil.example/","klik")'
    url = previewed(app, console, as_csv([row]))
    console.get(url)
    console.post(url + "/confirm")
    work_uploads(app)
    result = console.get(url + "/result.csv").get_data(as_text=True).lstrip("\ufeff")
    line = list(csv.reader(io.StringIO(result)))[1]
    assert line[1].startswith("'=HYPERLINK")
    assert not any(cell.startswith(("=", "+", "@")) for cell in line)


def test_another_agencys_staff_cannot_see_or_confirm_an_upload(app, puskesmas):
    console = staff(app, puskesmas["id"])
    url = previewed(app, console, as_csv([good_row(1)]))
    gateway = app.extensions["gateway"]
    other, _live = create_agency(gateway, "Puskesmas Lain", ["medicine_delivery"],
                                 actor="test")
    stranger = staff(app, other.id)
    assert stranger.get(url).status_code == 404
    assert stranger.get(url + "/result.csv").status_code == 404
    stranger.get("/console/requests")
    assert stranger.post(url + "/confirm").status_code == 404
    # the same agency's account of the other world (live) does not see it either
    assert staff(app, puskesmas["id"], key_type="live").get(url).status_code == 404
    with gateway.db.read() as session:
        assert session.query(Upload).one().status == "previewed"


def test_confirm_without_csrf_token_is_refused(app, puskesmas):
    console = staff(app, puskesmas["id"])
    url = previewed(app, console, as_csv([good_row(1)]))
    assert console.post(url + "/confirm", csrf=False).status_code == 400
    assert 'data-status="previewed"' in console.get(url).get_data(as_text=True)
    assert console.client.post(UPLOAD_URL, data={"file": (io.BytesIO(as_csv([good_row(2)])),
                                                          "x.csv")},
                               content_type="multipart/form-data").status_code == 400


def test_an_oversize_file_is_refused_with_a_clear_message(app, puskesmas):
    console = staff(app, puskesmas["id"])
    console.get(UPLOAD_URL)
    boundary = "xyz"
    huge = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.csv\"\r\n\r\n").encode() + b"x" * (9 * 1024 * 1024)
    answer = console.client.post(UPLOAD_URL, data=huge,
                                 content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 413
    assert "The file is too large" in answer.get_data(as_text=True)


@pytest.mark.parametrize("data, expected", [
    (as_csv([good_row(1)], encoding="cp1252").replace(b"Siti", b"S\xeeti"), "not UTF-8"),
    (b"\x00\x01\x02binary" * 100, "not a CSV or XLSX"),
    (b"PK\x03\x04 not really a zip", "damaged"),
    (b"a,b,c\n1,2,3\n", "No row of the file names"),
])
def test_unreadable_files_are_refused_with_what_to_do(app, puskesmas, data, expected):
    console = staff(app, puskesmas["id"])
    answer = upload(console, data, "permintaan.xlsx")
    assert answer.status_code == 400
    problem = parse(answer.get_data(as_text=True)).find("upload-problem")
    assert problem is not None and expected in problem.text


def test_a_zip_bomb_workbook_is_refused_before_it_is_parsed(app, puskesmas):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<" + b" " * (100 * 1024 * 1024) + b">")
    console = staff(app, puskesmas["id"])
    answer = upload(console, out.getvalue(), "bom.xlsx")
    assert answer.status_code == 400
    assert "damaged" in parse(answer.get_data(as_text=True)).find("upload-problem").text


def test_too_many_rows_are_refused(app, puskesmas, monkeypatch):
    from gateway import spreadsheets

    monkeypatch.setattr(spreadsheets, "MAX_ROWS", 5)
    console = staff(app, puskesmas["id"])
    answer = upload(console, as_csv([good_row(i) for i in range(6)]))
    assert answer.status_code == 400
    assert "more than 5 rows" in parse(answer.get_data(as_text=True)).find(
        "upload-problem").text


def test_the_upload_page_speaks_indonesian(app, puskesmas):
    console = staff(app, puskesmas["id"], language="id")
    page = console.get(UPLOAD_URL).get_data(as_text=True)
    assert "Permintaan lewat lembar kerja" in page and 'id="template-xlsx"' in page


def test_an_admin_uploads_for_an_agency_it_chooses(app, puskesmas, console_as):
    admin = console_as("admin")
    page = admin.get(UPLOAD_URL).get_data(as_text=True)
    assert puskesmas["id"] in page
    sent = admin.post(UPLOAD_URL, {"file": (io.BytesIO(as_csv([good_row(7)])), "a.csv"),
                                   "agency_id": puskesmas["id"], "key_type": "test"},
                      content_type="multipart/form-data")
    assert sent.status_code == 302
    work_uploads(app)
    admin.get(sent.headers["Location"])
    admin.post(sent.headers["Location"] + "/confirm")
    work_uploads(app)
    assert [r["reference"] for r in api_requests(app, puskesmas["test"])] == ["RX-UP-0007"]


def test_a_lost_upload_job_is_found_again_by_the_sweep(app, puskesmas):
    from datetime import timedelta

    from gateway.models import utcnow
    from gateway.sweep import sweep_once

    gateway = app.extensions["gateway"]
    console = staff(app, puskesmas["id"])
    url = previewed(app, console, as_csv([good_row(1), good_row(2)]))
    console.get(url)
    console.post(url + "/confirm")
    connection = Redis.from_url(gateway.redis_url)
    Queue(QueueNames.UPLOADS, connection=connection).empty()        # Redis lost the job
    connection.close()
    with gateway.db.write() as session:
        session.query(Upload).one().updated_at = utcnow() - timedelta(hours=1)
    assert sweep_once(gateway) >= 1
    work_uploads(app)
    assert len(api_requests(app, puskesmas["test"])) == 2
