"""Reading a clerk's spreadsheet: the kind by content, the encodings and separators Excel
writes, cells as the clerk sees them, and the limits that stop a hostile file early."""

from __future__ import annotations

import codecs
import io
import zipfile
from datetime import datetime

import openpyxl
import pytest

from gateway import spreadsheets
from gateway.errors import Invalid


def test_csv_with_bom_semicolons_and_a_decimal_comma_reads_as_typed():
    data = "\ufeffa;b\r\n\"x;y\";-8,2192\r\n".encode()
    assert spreadsheets.read(data) == ("csv", [["a", "b"], ["x;y", "-8,2192"]])


def test_utf16_with_its_mark_and_tabs_is_read():
    data = codecs.BOM_UTF16_LE + "a\tb\r\nSiti\t1\r\n".encode("utf-16-le")
    assert spreadsheets.read(data)[1] == [["a", "b"], ["Siti", "1"]]


def test_windows_1252_text_is_refused_not_misread():
    with pytest.raises(Invalid) as refused:
        spreadsheets.read("a,b\r\nS\xeeti,1\r\n".encode("cp1252"))
    assert refused.value.code == "upload_encoding"


def test_xlsx_cells_come_back_as_the_clerk_sees_them():
    workbook = openpyxl.Workbook()
    workbook.active.append(["n", "lat", "when", "flag", "formula"])
    workbook.active.append([30.0, -8.2192, datetime(2026, 12, 3, 9, 30), True,
                            "=HYPERLINK(\"http://x\")"])
    out = io.BytesIO()
    workbook.save(out)
    kind, rows = spreadsheets.read(out.getvalue())
    assert kind == "xlsx"
    # a formula without a cached value is empty (never evaluated), and dropped at the end
    assert rows[1] == ["30", "-8.2192", "2026-12-03T09:30:00", "true"]


def test_a_file_named_csv_that_is_a_zip_is_read_as_a_workbook_and_binary_is_refused():
    with pytest.raises(Invalid) as refused:
        spreadsheets.read(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    assert refused.value.code == "upload_not_spreadsheet"
    with pytest.raises(Invalid) as refused:
        spreadsheets.read(b"PK\x03\x04garbage")
    assert refused.value.code == "upload_damaged"


def test_a_zip_bomb_is_refused_from_its_directory():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (80 * 1024 * 1024))
    with pytest.raises(Invalid) as refused:
        spreadsheets.read(out.getvalue())
    assert refused.value.code == "upload_damaged"


def test_rows_and_columns_are_capped():
    with pytest.raises(Invalid) as refused:
        spreadsheets.read(b"a\n" + b"1\n" * 12, max_rows=10)
    assert refused.value.code == "upload_too_many_rows"
    with pytest.raises(Invalid) as refused:
        spreadsheets.read(",".join(["x"] * 201).encode())
    assert refused.value.code == "upload_too_many_columns"
