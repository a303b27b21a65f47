"""``gateway plugins new NAME [--kind notifier]``: the files of a new service plugin (or of a
notifier: a WhatsApp- or SMS-like channel for citizen notices), ready to install and test.

The templates are plain files under ``template/`` filled in with :class:`string.Template`
(``$name``, ``$classname``, ...; ``$$`` is a dollar sign), so the kit needs nothing beyond
the standard library and a template reads like the file it makes. ``template/package/``
becomes the plugin's package; a notifier's templates are under ``template_notifier/``. What
comes out installs with ``pip install -e .`` (its entry point, ``gateway`` or
``gateway.notifiers``, makes the gateway load it) and its tests pass as generated, against a
real gateway, through the fixtures of :mod:`gateway.pytest_plugin`; a test of the gateway's
own suite keeps it so.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from ..services import NAME_PATTERN

TEMPLATE_SUFFIX = ".tmpl"
#: what ``--kind`` may ask for, and the folder of its templates
KINDS = {"service": "template", "notifier": "template_notifier"}


class ScaffoldError(Exception):
    """The plugin cannot be created as asked (a bad name, a directory in the way)."""


@dataclass(frozen=True)
class Created:
    directory: Path
    #: the files written, relative to ``directory``
    files: tuple[str, ...]


def names_for(name: str, title: str | None = None, description: str | None = None) -> dict:
    """Everything a template may use, derived from the service name.

    :raises ScaffoldError: the name cannot be a service name and a Python package at once
    """
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name) or name == "gateway":
        raise ScaffoldError(f"{name!r} cannot be a service name: use lowercase letters, "
                            "digits and underscores, starting with a letter (e.g. "
                            "civil_documents)")
    dashed = name.replace("_", "-")
    title = title or name.replace("_", " ").capitalize()
    return {
        "name": name,
        "dashed": dashed,
        "distribution": f"gateway-{dashed}",
        "classname": "".join(part.capitalize() for part in name.split("_")),
        "upper": name.upper(),
        "title": _quoted(title),
        "description": _quoted(description or f"{title}: carried from a pickup point to the "
                                              "recipient's door."),
    }


def _quoted(text: str) -> str:
    """Text that goes between double quotes in Python and TOML alike."""
    return " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"')


def _templates(kind: str = "service"):
    root = resources.files(__package__) / KINDS[kind]

    def walk(node, prefix: str):
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            path = f"{prefix}{child.name}"
            if child.is_dir():
                yield from walk(child, f"{path}/")
            elif child.name.endswith(TEMPLATE_SUFFIX):
                yield path[:-len(TEMPLATE_SUFFIX)], child.read_text(encoding="utf-8")

    yield from walk(root, "")


def render(name: str, title: str | None = None, description: str | None = None,
           kind: str = "service") -> dict[str, str]:
    """The new plugin's files by relative path, not yet written anywhere.

    :raises ScaffoldError: a bad name, or a kind that is not in :data:`KINDS`
    """
    if kind not in KINDS:
        raise ScaffoldError(f"no plugin kind {kind!r}: {', '.join(KINDS)}")
    values = names_for(name, title, description)
    if kind == "notifier" and not description:
        values["description"] = _quoted(f"{values['title']}: citizen notices by a "
                                        "provider's messaging API.")
    files = {}
    for path, text in _templates(kind):
        if path.startswith("package/"):
            path = f"{name}/{path.removeprefix('package/')}"
        files[path] = Template(text).substitute(values)
    return files


def create_plugin(name: str, directory: str | Path | None = None, *, title: str | None = None,
                  description: str | None = None, kind: str = "service") -> Created:
    """Write a new plugin into ``directory`` (default ``./gateway-<name with dashes>``).

    :raises ScaffoldError: a bad name, or ``directory`` exists and is not empty (nothing of
        someone's is ever overwritten)
    """
    files = render(name, title, description, kind)
    target = Path(directory) if directory else Path(f"gateway-{name.replace('_', '-')}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} already exists and is not an empty directory")
    for path, text in files.items():
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
    return Created(target, tuple(sorted(files)))
