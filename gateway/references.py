"""Secret references and where they may stand: the schema says which fields are secrets.

A section's value may be a reference, ``{"$env": NAME}`` (optionally with ``default``) or
``{"$file": PATH}``, that is resolved on each node. Resolving one reads the server's
environment or files, so the place it stands decides who sees what it reads:

* in a field its schema declares secret (``metadata={"secret": True}``, or
  :class:`gateway.fields.Secret`), the value is only ever used, never shown: allowed;
* anywhere else, only the deploy's own files may put one (``base_url: {$env: ...}`` of a
  simulator); the console may keep that very reference at that very place, and nothing more.
  Otherwise a console admin could show ``/etc/passwd`` as a puskesmas' name on the fleet
  board, or send ``GATEWAY_SECRET_KEY`` to a courier.

Pure functions, used by start-up, ``gateway.liveconfig`` and the console's forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from marshmallow import Schema, fields

#: keys whose values look like credentials: hidden on pages whatever the schema says (a
#: fallback for undeclared keys; only a declared secret may hold a reference)
SECRET_NAME = re.compile(r"key|secret|token|password|passwd|auth|credential", re.IGNORECASE)
NOT_HERE = ("Only a field declared secret may read an environment variable or a file "
            "($env/$file); type the value itself here.")
MALFORMED = "A reference is {$env: NAME} (with an optional default) or {$file: PATH}."
_ABSENT = object()


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and ("$env" in value or "$file" in value)


def well_formed(value: dict) -> bool:
    """``{$env: NAME[, default: ...]}`` or ``{$file: PATH}`` with non-empty text."""
    kind = "$env" if "$env" in value else "$file"
    extra = set(value) - {kind} - ({"default"} if kind == "$env" else set())
    return not extra and isinstance(value[kind], str) and bool(value[kind].strip()) \
        and ("$env" not in value or "$file" not in value)


def is_secret_field(field: Any) -> bool:
    """Whether a schema field declares itself secret."""
    return isinstance(field, fields.Field) and bool(field.metadata.get("secret"))


def is_secret_name(name: Any) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def declared(schemas: list[Schema]) -> dict[str, fields.Field]:
    """The fields of these schemas by the key a section uses, the first schema winning."""
    out: dict[str, fields.Field] = {}
    for schema in schemas:
        for name, field in schema.fields.items():
            out.setdefault(field.data_key or name, field)
    return out


def walk(node: Any, value: Any, deployed: Any = _ABSENT, path: str = ""
         ) -> Iterator[tuple[str, Any, Any, Any]]:
    """Every value of a section with the schema field that validates it and the deploy's
    value at the same place: ``(path, field or None, value, deployed)``. ``node`` is a
    field, a mapping of fields (a schema's), or None (undeclared: nothing below is)."""
    yield path, node if isinstance(node, fields.Field) else None, value, deployed
    if is_reference(value):
        return
    for key, child, item, before in _children(node, value, deployed):
        yield from walk(child, item, before, f"{path}.{key}" if path else str(key))


def _children(node, value, deployed):
    if isinstance(node, fields.Nested):
        schema = node.schema
        node = declared([schema]) if not node.many else fields.List(fields.Nested(schema))
    if isinstance(value, dict):
        before = deployed if isinstance(deployed, dict) and not is_reference(deployed) else {}
        for key, item in value.items():
            if isinstance(node, dict):
                child = node.get(key)
            elif isinstance(node, fields.Dict):
                child = node.value_field
            else:
                child = None
            yield key, child, item, before.get(key, _ABSENT)
    elif isinstance(value, list):
        before = deployed if isinstance(deployed, list) else []
        child = node.inner if isinstance(node, fields.List) else None
        for index, item in enumerate(value):
            yield index, child, item, before[index] if index < len(before) else _ABSENT


def reference_problems(schemas: list[Schema], data: Any, deployed: Any
                       ) -> list[tuple[str, str]]:
    """``(key path, reason)`` for each reference of ``data`` that may not stand where it is:
    not in a field declared secret and not the deploy's own (``deployed``: the section of
    the files, unresolved), or not well formed."""
    problems = []
    for path, field, value, before in walk(declared(schemas), data, deployed):
        if not is_reference(value):
            continue
        if not well_formed(value):
            problems.append((path, MALFORMED))
        elif not is_secret_field(field) and value != before:
            problems.append((path, NOT_HERE))
    return problems


def secret_paths(schemas: list[Schema] | fields.Field, data: Any) -> set[str]:
    """The key paths of ``data`` to hide on a page: declared secrets, and scalars (or
    references) under keys named like credentials. ``schemas``: the section's, or the one
    field that holds ``data``."""
    node = schemas if isinstance(schemas, fields.Field) else declared(schemas)
    out = set()
    for path, field, value, _before in walk(node, data):
        key = path.rpartition(".")[2]
        if is_secret_field(field) or (path and is_secret_name(key) and (
                is_reference(value) or not isinstance(value, dict | list))):
            out.add(path)
    return out
