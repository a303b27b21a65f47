"""The one CSV writer: formula injection neutralised, numbers kept."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway import csvexport


def read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil.example","klik")', "+62-1",
                                  "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"])
def test_a_cell_that_starts_like_a_formula_is_written_as_text(text):
    rows = read(csvexport.write(["comment"], [[text]]))
    assert rows[1] == ["'" + text]


def test_numbers_times_and_plain_text_are_kept():
    when = datetime(2026, 12, 3, 1, 2, tzinfo=UTC)
    rows = read(csvexport.write(["a", "b", "c", "d", "e"],
                                [[-3, Decimal("78.70"), when, "Kurir ramah, obat utuh", None]]))
    assert rows[1] == ["-3", "78.70", "2026-12-03T01:02:00+00:00", "Kurir ramah, obat utuh",
                       ""]


def test_file_has_a_byte_order_mark_and_crlf():
    data = csvexport.write(["x"], [["é"]])
    assert data.startswith("\ufeff".encode()) and data.endswith(b"\r\n")
