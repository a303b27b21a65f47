"""Settings forms drawn from marshmallow schemas, and submitted forms read back into sections.

The console edits a service's or a courier's settings through a form generated from the same
schemas that validate them at start-up (the core's part, then the owner's ``config_schema``),
so a plugin gets its settings page by declaring its schema. Pure functions, no Flask:
:func:`form_fields` describes the inputs, :func:`form_data` turns what was submitted into the
section to validate and save.

Inputs are named by dotted key path (``circuit.failure_threshold``). Booleans are checkboxes,
numbers number inputs, strings text inputs, ``OneOf`` choices selects, nested schemas
fieldsets; lists, mappings and anything else are YAML in a textarea. Secrets are write-only:
a field its schema declares secret (``metadata={"secret": True}``, ``gateway.fields.Secret``)
or named like a credential shows "set" or "not set", never its value, variable or file; it
can be kept, replaced by an environment variable or a file (input ``<path>:source`` says
which, ``<path>`` holds the name), or cleared; a literal typed into it is not accepted. A
reference the deploy's files put in another field (a simulator's ``base_url``) is shown, and
can be kept or replaced by a value; asking for a reference anywhere but a declared secret is
a problem at that input (``gateway.references``). A value left empty is removed from the
section, so its default applies.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml
from marshmallow import Schema, fields, missing, validate

from ..liveconfig import HIDDEN, HIDDEN_CHANGED, masked
from ..references import NOT_HERE, is_reference, is_secret_field, is_secret_name
from .i18n import N_

#: how a referable field's value is given (the ``<path>:source`` input)
SOURCES = ("value", "keep", "env", "file", "")
_MISSING = object()
_TRUE = ("true", "on", "1", "yes")


@dataclass
class FormField:
    """One input of a settings form (or a fieldset of them, ``kind == "group"``)."""

    path: str
    key: str
    label: str
    kind: str                       # checkbox | number | select | text | yaml | group
    help: str | None = None
    required: bool = False
    default: str = ""               # the default, as text, for hints and placeholders
    value: Any = ""                 # str for inputs, bool for checkboxes
    choices: tuple[str, ...] = ()
    step: str = "any"
    secret: bool = False
    #: for secrets and references: "value", "keep", "env", "file" or "" (not set)
    source: str | None = None
    sources: tuple[str, ...] = ()
    #: the deploy's reference kept in a field that is not secret: "env" or "file", and its
    #: name (never set for a secret)
    reference_kind: str = ""
    reference_name: str = ""
    children: list[FormField] = field(default_factory=list)

    @property
    def referable(self) -> bool:
        return bool(self.sources)


# -- schema -> fields ------------------------------------------------------------------------
def form_fields(schemas: list[Schema], data: dict | None, prefix: str = "") -> list[FormField]:
    """The inputs for ``data`` (a section, unresolved) under these schemas, in their order.

    A key of ``data`` that no schema declares gets a YAML input of its own, so nothing in a
    section is out of reach (adapters without a schema keep their settings as they are).
    """
    data = data if isinstance(data, dict) else {}
    out: list[FormField] = []
    seen: set[str] = set()
    for schema in schemas:
        for name, schema_field in schema.fields.items():
            key = schema_field.data_key or name
            if key in seen or schema_field.dump_only:
                continue
            seen.add(key)
            out.append(_form_field(key, schema_field, data.get(key, _MISSING), prefix))
    for key in data:
        if key not in seen:
            out.append(_form_field(str(key), fields.Raw(), data[key], prefix))
    return out


def _form_field(key: str, schema_field: fields.Field, current: Any, prefix: str) -> FormField:
    path = f"{prefix}{key}"
    form_field = FormField(path=path, key=key, label=label(key), kind=_kind(schema_field),
                           help=schema_field.metadata.get("description"),
                           required=bool(schema_field.required),
                           default=_text(_default(schema_field)),
                           secret=is_secret_field(schema_field) or is_secret_name(key))
    if form_field.kind == "group":
        form_field.children = form_fields([schema_field.schema], _or(current, {}), f"{path}.")
        return form_field
    if form_field.kind == "select":
        form_field.choices = tuple(str(c) for c in _one_of(schema_field).choices)
    if isinstance(schema_field, fields.Integer):
        form_field.step = "1"
    if form_field.secret:
        _describe_secret(form_field, current)
    elif is_reference(current):
        # the deploy's files put it here: it may be kept, or replaced by a value
        form_field.sources, form_field.source = ("keep", "value"), "keep"
        form_field.reference_kind = "env" if "$env" in current else "file"
        form_field.reference_name = _text(current.get("$env", current.get("$file")))
    elif form_field.kind == "checkbox":
        form_field.value = bool(_or(current, _default(schema_field)))
    elif form_field.kind == "yaml":
        form_field.value = "" if current is _MISSING else _yaml(current, schema_field)
    else:
        form_field.value = _text(_or(current, None))
    return form_field


def _describe_secret(form_field: FormField, current: Any) -> None:
    """A secret offers: keep what it has (unseen: "set"), an environment variable, a file,
    or (when not required) nothing. Neither its value nor its reference is put in the page."""
    is_set = current is not _MISSING and current is not None
    form_field.sources = (("keep",) if is_set else ()) + ("env", "file") + \
        (() if form_field.required else ("",))
    form_field.source = "keep" if is_set else ("env" if form_field.required else "")
    form_field.value = ""


def _kind(schema_field: fields.Field) -> str:
    if isinstance(schema_field, fields.Nested) and not schema_field.many:
        return "group"
    if isinstance(schema_field, fields.Boolean):
        return "checkbox"
    if _one_of(schema_field) is not None:
        return "select"
    if isinstance(schema_field, fields.Number):
        return "number"
    if isinstance(schema_field, fields.String | fields.DateTime | fields.Date | fields.Time):
        return "text"
    return "yaml"


def _one_of(schema_field: fields.Field) -> validate.OneOf | None:
    return next((v for v in schema_field.validators if isinstance(v, validate.OneOf)), None)


def _default(schema_field: fields.Field) -> Any:
    default = schema_field.load_default
    if default is missing:
        return None
    return default() if callable(default) else default


def label(key: str) -> str:
    """``timeout_seconds`` -> ``Timeout seconds``."""
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _or(value: Any, fallback: Any) -> Any:
    return fallback if value is _MISSING or value is None else value


def _text(value: Any) -> str:
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True,
                              sort_keys=False).strip()
    return str(value)


def _yaml(value: Any, schema_field: fields.Field | None = None) -> str:
    return yaml.safe_dump(masked(value, None, schema_field), default_flow_style=False,
                          allow_unicode=True, sort_keys=False)


# -- submitted form -> section --------------------------------------------------------------
def form_data(form_fields_: list[FormField], form, original: dict | None
              ) -> tuple[dict, list[tuple[str, str]]]:
    """The section a submitted form asks for, built over ``original``.

    An input absent from the submission leaves its key as it was (a partial form changes
    only what it names); an input submitted empty removes its key. Keys no input covers stay.

    :param form: the submitted values: a ``MultiDict`` or a mapping of names to values
    :return: the section (unresolved, unvalidated) and ``(key path, reason)`` for inputs
        that cannot be read (YAML that does not parse, a reference without a name)
    """
    original = original if isinstance(original, dict) else {}
    data = copy.deepcopy(original)
    problems: list[tuple[str, str]] = []
    _apply(form_fields_, _Form(form), original, data, problems)
    return data, problems


class _Form:
    def __init__(self, form):
        self.form = form

    def values(self, name: str) -> list[str] | None:
        if hasattr(self.form, "getlist"):
            found = self.form.getlist(name)
            return found if found or name in self.form else None
        if name not in self.form:
            return None
        value = self.form[name]
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    def get(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1].strip() if found else None


def _apply(fields_: list[FormField], form: _Form, original: dict, out: dict,
           problems: list) -> None:
    for form_field in fields_:
        key = form_field.key
        current = original.get(key, _MISSING)
        if form_field.kind == "group":
            inner = current if isinstance(current, dict) else {}
            section = copy.deepcopy(inner)
            _apply(form_field.children, form, inner, section, problems)
            if section or (current is not _MISSING and current is not None):
                out[key] = section
            elif current is None:
                out[key] = None
            else:
                out.pop(key, None)
            continue
        value = _submitted(form_field, form, current, problems)
        if value is _MISSING:
            out.pop(key, None)
        else:
            out[key] = value


def _submitted(form_field: FormField, form: _Form, current: Any, problems: list) -> Any:
    path = form_field.path
    if not form_field.secret and form.get(f"{path}:source") in ("env", "file"):
        problems.append((path, NOT_HERE))
        return current
    if form_field.referable:
        source = form.get(f"{path}:source")
        if source is None or source not in form_field.sources:
            return current                              # not in this submission: unchanged
        if source == "keep":
            return current
        if source == "":
            return _MISSING
        if source in ("env", "file"):
            return _reference(form_field, form, source, current, problems)
    values = form.values(path)
    if values is None:
        return current
    if form_field.kind == "checkbox":
        checked = any(v.strip().lower() in _TRUE for v in values)
        default = form_field.default == "true"
        return _MISSING if current is _MISSING and checked == default else checked
    text = values[-1]
    if form_field.kind != "yaml":
        text = text.strip()
    if not text.strip():
        return _MISSING
    if form_field.kind == "number":
        return _number(text)
    if form_field.kind == "yaml":
        try:
            return _unmask(yaml.safe_load(text), current)
        except yaml.YAMLError as exc:
            problems.append((path, f"Not valid YAML: {getattr(exc, 'problem', None) or exc}"))
            return current
    return text


def _reference(form_field: FormField, form: _Form, source: str, current: Any,
               problems: list) -> Any:
    name = form.get(form_field.path) or ""
    if not name:
        problems.append((form_field.path, N_("Name an environment variable.")
                         if source == "env" else N_("Name a file.")))
        return current
    if source == "file":
        return {"$file": name}
    reference = {"$env": name}
    # a secret's default is never shown, so it is kept as it was
    if is_reference(current) and "default" in current:
        reference["default"] = current["default"]
    return reference


def _number(text: str) -> Any:
    """An int when it reads as one, else a float; else the text, for the schema to refuse
    with its own message."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def _unmask(value: Any, current: Any) -> Any:
    """Put back the secrets that were shown hidden, from the section as it was."""
    if value in (HIDDEN, HIDDEN_CHANGED):
        return None if current is _MISSING else current
    if isinstance(value, dict):
        before = current if isinstance(current, dict) else {}
        return {k: _unmask(v, before.get(k, _MISSING)) for k, v in value.items()}
    if isinstance(value, list):
        before = current if isinstance(current, list) else []
        return [_unmask(v, before[i] if i < len(before) else _MISSING)
                for i, v in enumerate(value)]
    return value


def errors_by_field(form_fields_: list[FormField], problems: list[tuple[str, str]]
                    ) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Place each ``(key path, reason)`` at the input that holds that path (a problem deep
    in a YAML input, ``pickup_locations.0.location.lat``, goes to ``pickup_locations``, with
    ``0.location.lat`` to say where in it).

    :return: ``(where within the input, reason)`` by input path (``where`` empty for the
        input itself), and the reasons no input holds (shown above the form)
    """
    paths = sorted(_paths(form_fields_), key=len, reverse=True)
    placed: dict[str, list[tuple[str, str]]] = {}
    general: list[str] = []
    for path, reason in problems:
        holder = next((p for p in paths if path == p or path.startswith(f"{p}.")), None)
        if holder is None:
            general.append(f"{path}: {reason}" if path else reason)
        else:
            placed.setdefault(holder, []).append((path[len(holder) + 1:], reason))
    return placed, general


def _paths(form_fields_: list[FormField]):
    for form_field in form_fields_:
        yield form_field.path
        yield from _paths(form_field.children)
