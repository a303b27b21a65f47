"""A service's request form, drawn from the service's own request schema, and read back into
the body that intake validates.

The console never knows a service: it walks ``service.request_schema`` (a marshmallow schema)
and draws one input per field, labelled and explained in the reader's language by the
field's own metadata, when the service gives it::

    fields.String(required=True, metadata={
        "label": {"id": "Nomor resep", "en": "Prescription number"},
        "help": {"id": "...", "en": "..."},
        "choices_from": "pickup_locations"})   # a list of places in the service's settings

(without ``label`` the field's name is shown, without ``help`` its ``description``). Inputs
are named by dotted path, the same paths intake's errors name (``patient.location.lat``,
``items.0.quantity``), so each error lands next to its input. Booleans are checkboxes,
numbers number inputs, ``OneOf`` and ``choices_from`` selects, aware date-times
``datetime-local`` inputs read in the region's zone; a nested schema is a fieldset, one with
exactly ``lat`` and ``lng`` a point that a map can set; a list of nested schemas is a number
of rows (``<path>._rows``), and "add a row" is a submit button, so it works without
JavaScript. Values are only converted where the form's text cannot say the type (a number
typed into a number input); what does not convert is handed on as typed, for intake to
refuse with its own message. Pure: no Flask, no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, fields, validate

#: a list's rows: shown at first, and at most (a request's lists are short)
FIRST_ROWS, MAX_ROWS = 1, 50
ROWS_SUFFIX = "._rows"
_TRUE = ("on", "true", "1", "yes", "ya")


@dataclass
class Input:
    """One input of the form, or a group of them (``kind`` ``group``, ``location`` or
    ``rows``)."""

    path: str
    name: str
    label: str
    kind: str       # text | number | integer | checkbox | select | datetime | lines | group
                    # | location | rows
    help: str = ""
    required: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    children: list[Input] = field(default_factory=list)
    #: for ``rows``: one list of children per row
    rows: list[list[Input]] = field(default_factory=list)
    max_rows: int = MAX_ROWS


def _text(metadata: dict, key: str, language: str) -> str:
    value = metadata.get(key)
    if isinstance(value, dict):
        return value.get(language) or value.get("en") or next(iter(value.values()), "")
    return value or ""


def _label(name: str, metadata: dict, language: str) -> str:
    return _text(metadata, "label", language) or name.replace("_", " ").capitalize()


def _one_of(item: fields.Field) -> list[str]:
    validators = item.validators if isinstance(item.validators, list | tuple) else []
    for check in validators:
        if isinstance(check, validate.OneOf):
            return [str(choice) for choice in check.choices]
    return []


def _nested_schema(item: fields.Field) -> Schema | None:
    if isinstance(item, fields.Nested):
        return item.schema
    return None


def _is_location(schema: Schema) -> bool:
    return set(schema.fields) == {"lat", "lng"}


def _choices_from(metadata: dict, config: dict) -> list[tuple[str, str]]:
    source = metadata.get("choices_from")
    places = config.get(source) if source else None
    if not isinstance(places, list):
        return []
    return [(str(place["id"]), f"{place.get('name') or place['id']}")
            for place in places if isinstance(place, dict) and place.get("id")]


def _rows_wanted(path: str, form, minimum: int) -> int:
    try:
        wanted = int((form or {}).get(path + ROWS_SUFFIX, minimum))
    except (TypeError, ValueError):
        wanted = minimum
    return max(minimum, min(wanted, MAX_ROWS))


def describe(schema: Schema, language: str, config: dict | None = None, form=None,
             prefix: str = "", add_row: str | None = None) -> list[Input]:
    """The inputs of ``schema``, in its order.

    :param form: the submitted form, if any (says how many rows each list has)
    :param add_row: the path of a list to give one more row
    """
    config = config or {}
    out = []
    for name, item in schema.fields.items():
        if item.dump_only:
            continue
        path = f"{prefix}{name}"
        meta = item.metadata or {}
        common = {"path": path, "name": name, "label": _label(name, meta, language),
                  "help": _text(meta, "help", language) or meta.get("description", ""),
                  "required": bool(item.required)}
        nested = _nested_schema(item)
        if nested is not None:
            kind = "location" if _is_location(nested) else "group"
            out.append(Input(kind=kind, children=describe(
                nested, language, config, form, f"{path}.", add_row), **common))
        elif isinstance(item, fields.List) and _nested_schema(item.inner) is not None:
            inner = _nested_schema(item.inner)
            count = _rows_wanted(path, form, FIRST_ROWS) + (1 if add_row == path else 0)
            count = min(count, MAX_ROWS)
            rows = [describe(inner, language, config, form, f"{path}.{index}.", add_row)
                    for index in range(count)]
            out.append(Input(kind="rows", rows=rows, **common))
        elif isinstance(item, fields.List):
            out.append(Input(kind="lines", **common))
        elif isinstance(item, fields.Boolean):
            out.append(Input(kind="checkbox", **common))
        elif isinstance(item, fields.Integer):
            out.append(Input(kind="integer", **common))
        elif isinstance(item, fields.Float | fields.Decimal | fields.Number):
            out.append(Input(kind="number", **common))
        elif isinstance(item, fields.DateTime):
            out.append(Input(kind="datetime", **common))
        else:
            choices = _choices_from(meta, config) or [(c, c) for c in _one_of(item)]
            out.append(Input(kind="select" if choices else "text", choices=choices, **common))
    return out


# -- form -> body -------------------------------------------------------------------------------
def _number(text: str, kind: str):
    try:
        return int(text) if kind == "integer" else float(text.replace(",", "."))
    except ValueError:
        return text             # intake says "Not a valid number." at this field


def _datetime(text: str, zone: str):
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    return when.isoformat()


def _read(inputs: list[Input], form, zone: str) -> dict:
    body: dict[str, Any] = {}
    for item in inputs:
        if item.kind in ("group", "location"):
            inner = _read(item.children, form, zone)
            if inner:
                body[item.name] = inner
        elif item.kind == "rows":
            rows = [_read(row, form, zone) for row in item.rows]
            rows = [row for row in rows if row]     # an empty row is no row
            if rows:
                body[item.name] = rows
        elif item.kind == "checkbox":
            body[item.name] = (form.get(item.path) or "").lower() in _TRUE
        else:
            text = (form.get(item.path) or "").strip()
            if not text:
                continue                            # empty: the schema's default applies
            if item.kind in ("integer", "number"):
                body[item.name] = _number(text, item.kind)
            elif item.kind == "datetime":
                body[item.name] = _datetime(text, zone)
            elif item.kind == "lines":
                body[item.name] = [line.strip() for line in text.splitlines() if line.strip()]
            else:
                body[item.name] = text
    return body


def _has_text(inputs: list[Input], form) -> bool:
    """Did anyone type into these inputs (checkboxes alone do not make a row)?"""
    for item in inputs:
        if item.kind in ("group", "location"):
            if _has_text(item.children, form):
                return True
        elif item.kind == "rows":
            if any(_has_text(row, form) for row in item.rows):
                return True
        elif item.kind != "checkbox" and (form.get(item.path) or "").strip():
            return True
    return False


def read_body(inputs: list[Input], form, zone: str) -> dict:
    """The request body the form says, for intake to validate. A list's rows that nobody
    typed into are left out, and the rest renumbered from 0 (the page is drawn again from
    this body, so errors' row numbers match the rows shown)."""
    for item in inputs:
        if item.kind == "rows":
            item.rows = [row for row in item.rows if _has_text(row, form)] or item.rows[:0]
    return _read(inputs, form, zone)


def values_of(body: Any, prefix: str = "") -> dict[str, str]:
    """The body as the form's values, by dotted path (to draw the form again)."""
    out: dict[str, str] = {}
    if isinstance(body, dict):
        for key, value in body.items():
            out.update(values_of(value, f"{prefix}{key}."))
    elif isinstance(body, list) and body and all(isinstance(v, dict) for v in body):
        out[prefix.rstrip(".") + ROWS_SUFFIX] = str(len(body))
        for index, value in enumerate(body):
            out.update(values_of(value, f"{prefix}{index}."))
    elif isinstance(body, list):
        out[prefix.rstrip(".")] = "\n".join(str(v) for v in body)
    elif isinstance(body, bool):
        out[prefix.rstrip(".")] = "on" if body else ""
    elif body is not None:
        out[prefix.rstrip(".")] = str(body)
    return out


def paths(inputs: list[Input]) -> set[str]:
    """Every path an input or group is drawn at (errors elsewhere go at the top)."""
    out = set()
    for item in inputs:
        out.add(item.path)
        out |= paths(item.children)
        for row_index, row in enumerate(item.rows):
            out.add(f"{item.path}.{row_index}")
            out |= paths(row)
    return out
