"""A service's spreadsheet: its columns, drawn from the service's schema through the request
form (``request_form.py``), and a filled-in row read back into the body intake validates.

One row is one request. A column is one input of the form, named by the form's dotted path
(``patient.nik``, ``patient.location.lat``), the very path intake's errors name, so a
preview's error lands on its column. A list of nested rows (a prescription's ``items``) gets
``SHEET_ROWS`` groups of columns, ``items.0.name``, ``items.0.quantity``, ``items.1.name``,
...; the clerk fills as many as the request has and leaves the rest empty. A checkbox column
takes ``ya``/``yes``/``true``/``1`` (anything else is no), a list of words one per line
(Alt+Enter in Excel), a date and time in the region's zone.

The template has two header rows: the labels in the reader's language (what the clerk reads)
and the machine names (what the gateway reads). When reading, the header row is the first
row of the file's first three whose cells are mostly known column names; an unknown column is
ignored (and shown as such on the preview), a missing one is empty. Pure: no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import Schema

from .. import csvexport, spreadsheets
from .request_form import ROWS_SUFFIX, Input, describe, read_body

#: rows of a nested list offered as columns in a template
SHEET_ROWS = 5


@dataclass(frozen=True)
class Column:
    path: str
    label: str
    kind: str
    required: bool


def _rows_form(schema: Schema) -> dict:
    """A form that asks ``describe`` for ``SHEET_ROWS`` rows of every list."""
    out = {}
    for name, item in schema.fields.items():
        inner = getattr(item, "inner", None)
        nested = getattr(inner, "schema", None) if inner is not None else None
        if nested is not None:
            out[name + ROWS_SUFFIX] = str(SHEET_ROWS)
        elif getattr(item, "schema", None) is not None:
            out.update({f"{name}.{k}": v for k, v in _rows_form(item.schema).items()})
    return out


def _leaves(inputs: list[Input], prefix: str = "") -> list[Column]:
    out = []
    for item in inputs:
        label = f"{prefix}{item.label}"
        if item.kind in ("group", "location"):
            out += _leaves(item.children, f"{label} · ")
        elif item.kind == "rows":
            for index, row in enumerate(item.rows, start=1):
                out += _leaves(row, f"{label} {index} · ")
        else:
            out.append(Column(item.path, label + (" *" if item.required else ""),
                              item.kind, item.required))
    return out


def columns(schema: Schema, language: str, config: dict | None = None) -> list[Column]:
    """The template's columns, in the schema's order."""
    return _leaves(describe(schema, language, config, _rows_form(schema)))


def template_csv(cols: list[Column]) -> bytes:
    return csvexport.write([c.label for c in cols], [[c.path for c in cols]])


def template_xlsx(cols: list[Column], title: str) -> bytes:
    return spreadsheets.write_xlsx(
        [[c.label for c in cols], [c.path for c in cols]],
        [c.kind in ("text", "select", "lines") for c in cols], title)


def header_index(rows: list[list[str]], cols: list[Column]) -> int | None:
    """Which of the first three rows names the columns (None: none does)."""
    known = {c.path for c in cols}
    for index, row in enumerate(rows[:3]):
        named = [cell for cell in row if cell]
        if named and sum(cell in known for cell in named) * 2 >= len(named):
            return index
    return None


def bodies(rows: list[list[str]], header: int, schema: Schema, language: str,
           config: dict, zone: str) -> tuple[list[dict], list[str]]:
    """``([{"row": n, "body": {...}}], ignored columns)``: each filled row below the header
    as the body the form would send, ``n`` its row number as the spreadsheet shows it."""
    names = rows[header]
    form_rows = _rows_form(schema)
    known = {c.path for c in columns(schema, language, config)}
    ignored = sorted({name for name in names if name and name not in known})
    # Every row has the same inputs (SHEET_ROWS rows per list): described once, and the
    # lists' rows, which read_body narrows to those filled in, put back after each row.
    inputs = describe(schema, language, config, form_rows)
    all_rows = [(item, item.rows) for item in inputs if item.kind == "rows"]
    out = []
    for offset, cells in enumerate(rows[header + 1:], start=header + 2):
        if not any(cells):
            continue                                # an empty line is no request
        form = dict(form_rows)
        form.update({name: value for name, value in zip(names, cells, strict=False)
                     if name in known and value})
        out.append({"row": offset, "body": read_body(inputs, form, zone)})
        for item, item_rows in all_rows:
            item.rows = item_rows
    return out, ignored
