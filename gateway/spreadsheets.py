"""Spreadsheet files an office clerk fills in: read an uploaded CSV or XLSX into rows of text,
and write a template as XLSX. Pure: no Flask, no database.

A file's kind is told by its content, never its name: an XLSX is a ZIP (``PK\\x03\\x04``),
anything else must be CSV text. What a hostile or careless file can do is bounded before it
is read:

* the caller caps the bytes (``MAX_FILE_BYTES``) and :func:`read` the rows (``MAX_ROWS``)
  and columns (``MAX_COLUMNS``);
* an XLSX's ZIP directory is checked first: at most ``MAX_UNZIPPED_BYTES`` once unpacked and
  no member unpacking more than ``MAX_RATIO`` times its size (a "zip bomb" is refused before
  any XML is parsed); openpyxl then reads it in ``read_only`` mode (streaming, memory flat)
  with ``data_only`` (a formula cell gives the value Excel computed; a formula's text is never
  evaluated here, and every cell is plain text to the gateway);
* CSV is UTF-8 (with or without Excel's byte order mark) or UTF-16 with its mark; any other
  encoding is refused with a message saying how to save the file, rather than read as
  mojibake; the separator is found from the header line (``,``, ``;`` as Indonesian Excel
  writes it, or a tab).

Cells come back as stripped text (a whole number typed in Excel as ``30``, never ``30.0``;
dates in ISO 8601), empty cells as ``""``.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time

from .errors import Invalid

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_ROWS = 10_000
MAX_COLUMNS = 200
MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
MAX_RATIO = 200
ZIP_MAGIC = b"PK\x03\x04"


def _refuse(code: str, message: str) -> Invalid:
    """A refusal of the whole file; ``code`` says why (the console words it for the clerk)."""
    return Invalid(code, message, fields={"file": [message]})


def kind_of(data: bytes) -> str:
    """``xlsx`` or ``csv``, by content.

    :raises Invalid: ``upload_empty``, ``upload_not_spreadsheet``
    """
    if not data.strip():
        raise _refuse("upload_empty", "The file is empty.")
    if data.startswith(ZIP_MAGIC):
        return "xlsx"
    head = data[:4096]
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _refuse("upload_not_spreadsheet", "This is not a CSV or XLSX file.")
    return "csv"


def text_of(value) -> str:
    """A cell as text, the way the clerk sees it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()


def read(data: bytes, max_rows: int | None = None) -> tuple[str, list[list[str]]]:
    """``(kind, rows)``: every row of the file's first sheet as text, header rows included.

    :raises Invalid: ``upload_empty``, ``upload_not_spreadsheet``, ``upload_encoding``,
        ``upload_too_many_rows``, ``upload_too_many_columns``, ``upload_damaged`` (a CSV
        that cannot be parsed, an XLSX that cannot be opened or unpacks too large)
    """
    max_rows = max_rows or MAX_ROWS
    kind = kind_of(data)
    rows = _read_xlsx(data) if kind == "xlsx" else _read_csv(data)
    out = []
    # a template's two header rows, then at most max_rows rows of data
    for index, row in enumerate(rows):
        if index >= max_rows + 2:
            raise _refuse("upload_too_many_rows",
                          f"The file has more than {max_rows} rows; split it into several "
                          "files.")
        row = list(row)
        while row and row[-1] in (None, ""):
            row.pop()                   # openpyxl pads a row to the sheet's widest
        if len(row) > MAX_COLUMNS:
            raise _refuse("upload_too_many_columns",
                          f"The file has more than {MAX_COLUMNS} columns.")
        out.append([text_of(cell) for cell in row])
    return kind, out


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    raise _refuse("upload_encoding",
                  "The file is not UTF-8 text. In Excel, save it as \"CSV UTF-8 (Comma "
                  "delimited)\" or as an Excel workbook (.xlsx).")


def _read_csv(data: bytes) -> Iterable[Sequence]:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    separator = max(counts, key=counts.get) if any(counts.values()) else ","
    try:
        yield from csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    except csv.Error as exc:
        raise _refuse("upload_damaged", f"The CSV file is damaged: {exc}.") from None


def _read_xlsx(data: bytes) -> Iterable[Sequence]:
    import openpyxl  # only when an XLSX comes

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            unpacked = sum(member.file_size for member in members)
            if len(members) > 1000 or unpacked > MAX_UNZIPPED_BYTES or any(
                    member.file_size > MAX_RATIO * max(member.compress_size, 1) + 4096
                    for member in members):
                raise _refuse("upload_damaged", "The workbook unpacks to far more than its "
                              "size; it is refused.")
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise _refuse("upload_damaged", f"The workbook cannot be read ({type(exc).__name__}); "
                      "save it again as .xlsx.") from None
    try:
        sheet = workbook.worksheets[0]
        yield from sheet.iter_rows(values_only=True)
    finally:
        workbook.close()


def write_xlsx(header_rows: Sequence[Sequence[str]], text_columns: Sequence[bool],
               title: str = "requests") -> bytes:
    """A workbook of ``header_rows`` (bold, frozen above the data), its columns formatted as
    text where ``text_columns`` says so (a 16-digit NIK or a phone number typed into a text
    cell keeps every digit and its leading zero or ``+``)."""
    import openpyxl
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title[:31]
    for row in header_rows:
        sheet.append(list(row))
    for row_cells in sheet.iter_rows(min_row=1, max_row=len(header_rows)):
        for cell_ in row_cells:
            cell_.font = Font(bold=True)
    sheet.freeze_panes = sheet.cell(row=len(header_rows) + 1, column=1)
    for index, is_text in enumerate(text_columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = 22
        if is_text:
            sheet.column_dimensions[letter].number_format = "@"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
