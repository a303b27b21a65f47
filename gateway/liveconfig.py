"""Live configuration: services' and couriers' settings changed in the console, without a
restart.

A change is a new :class:`~gateway.models.ConfigVersion` of one *target* (``service:<name>``
or ``courier:<instance>``) holding that target's whole section as the admin saved it. The
*effective* section of a target is its newest version's data, else its section of the YAML
files; every API node and worker notices a new version (``Gateway.refresh_config``) and
rebuilds its settings from the effective sections with the same function as start-up.

A change is validated with exactly the start-up rules before it is stored, and stored in one
transaction with its audit event. Sections keep secret references (``{"$env": NAME}``,
``{"$file": PATH}``) unresolved: a secret's value is read only where it is used, and never
reaches the database, a diff, the audit trail or a page. A reference may stand only in a
field its schema declares secret, or where the deploy's files put that very reference
(``gateway.references``): checked before anything is resolved, on saving and again on
loading each stored version. Secrets (declared, or under credential-like keys such as
``pass_key``) are hidden in diffs, references included. Couriers' URLs must be in the
deploy's ``courier_hosts``, which only ``gateway.yaml`` sets. No Flask here: the console, the
CLI and tests use the same functions.
"""

from __future__ import annotations

import copy
import difflib
import math
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import func, select

from .context import correlation_id
from .events import Event
from .models import ConfigVersion
from .references import is_reference, is_secret_name, reference_problems, secret_paths
from .settings import (
    ConfigError,
    CourierSettingsSchema,
    OwnedConfig,
    ServiceSettingsSchema,
    build_owned_config,
    check_courier,
    check_service,
    courier_adapter,
    courier_entries,
    resolve_references,
)

__all__ = ["is_reference", "is_secret_name"]   # kept importable from here

KINDS = ("service", "courier")
HIDDEN = "(hidden)"
HIDDEN_CHANGED = "(hidden, changed)"


class UnknownTarget(LookupError):
    """No installed service or configured courier instance has this name."""


class ChangeRefused(Exception):
    """The settings would not pass start-up validation. ``problems``: ``(key path, reason)``."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path or '(top level)'}: {reason}"
                                   for path, reason in problems))


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a target, with the diff from the one before (version 0: the files)."""

    version: int
    author: str | None
    note: str | None
    created_at: datetime | None
    data: dict
    diff: str


# -- targets and their sections -----------------------------------------------------------
def target_of(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def split_target(target: str) -> tuple[str, str]:
    kind, _, name = target.partition(":")
    return kind, name


def file_section(gateway, target: str) -> dict:
    """The target's section of the YAML files (create_app overrides included), unresolved.

    :raises UnknownTarget: not an installed service or a configured courier instance
    """
    kind, name = split_target(target)
    if kind == "service" and name in gateway.services:
        return copy.deepcopy(gateway.settings.raw_services.get(name, {}))
    if kind == "courier":
        entries = courier_entries(gateway.courier_classes, gateway.settings.raw_couriers)
        if name in entries and courier_adapter(gateway.courier_classes, name, entries[name]):
            return copy.deepcopy(entries[name])
    raise UnknownTarget(target)


def section_schemas(gateway, target: str, section: dict | None = None) -> list:
    """The schemas of a target's section: the core's part, then its owner's (the service's,
    the adapter's that ``section`` names)."""
    kind, name = split_target(target)
    if kind == "service":
        owner = gateway.services[name].config_schema
        return [ServiceSettingsSchema(), *([owner()] if owner else [])]
    adapter = courier_adapter(gateway.courier_classes, name, section or {})
    owner = adapter.config_schema if adapter is not None else None
    return [CourierSettingsSchema(), *([owner()] if owner else [])]


def misplaced_references(gateway, target: str, data: dict) -> list[tuple[str, str]]:
    """``(key path, reason)`` for references of ``data`` that may not stand where they are
    (see ``gateway.references``), against the target's section of the files."""
    return reference_problems(section_schemas(gateway, target, data), data,
                              file_section(gateway, target))


def newest_version_id(gateway) -> int:
    """The id of the newest version of any target (0: none): the cheap "anything new?"."""
    with gateway.db.read() as session:
        return session.scalar(select(func.max(ConfigVersion.id))) or 0


def newest_versions(session) -> dict[str, ConfigVersion]:
    """The newest version of each target that has one."""
    newest = select(func.max(ConfigVersion.id)).group_by(ConfigVersion.target)
    rows = session.scalars(select(ConfigVersion).where(ConfigVersion.id.in_(newest)))
    return {row.target: row for row in rows}


def effective_section(gateway, target: str, session=None) -> dict:
    """The target's newest version's data, else its section of the files; unresolved.

    :raises UnknownTarget: see :func:`file_section`
    """
    base = file_section(gateway, target)
    with gateway.db.read() if session is None else nullcontext(session) as session:
        newest = session.scalars(select(ConfigVersion).where(ConfigVersion.target == target)
                                 .order_by(ConfigVersion.id.desc()).limit(1)).first()
        return copy.deepcopy(newest.data) if newest is not None else base


def load_owned_config(gateway) -> tuple[OwnedConfig, int]:
    """Every effective section, resolved and validated as at start-up.

    :return: the settings and the newest version id they include
    :raises ConfigError: a section does not validate (here and now: an environment variable
        may be missing on this node)
    """
    with gateway.db.read() as session:
        versions = newest_versions(session)
    sections = {"service": dict(gateway.settings.raw_services),
                "courier": dict(gateway.settings.raw_couriers)}
    problems: list[tuple[str, str, str]] = []
    for target, version in versions.items():
        kind, name = split_target(target)
        if kind not in sections:
            continue
        try:
            misplaced = misplaced_references(gateway, target, version.data)
        except UnknownTarget:
            misplaced = []
        if misplaced:        # never resolved: a stored version must not read the server
            problems.extend((f"console version {version.id}", f"{name}.{path}", reason)
                            for path, reason in misplaced)
            continue
        sections[kind][name] = version.data
    files = ("services.yaml or console", "couriers.yaml or console")
    resolved = {kind: {name: resolve_references(section, name, file, problems)
                       for name, section in sections[kind].items()}
                for kind, file in zip(KINDS, files, strict=True)}
    owned, invalid = build_owned_config(gateway.services, gateway.courier_classes,
                                        resolved["service"], resolved["courier"], files,
                                        gateway.settings["courier_hosts"])
    if problems or invalid:
        raise ConfigError(problems + invalid)
    return owned, max((v.id for v in versions.values()), default=0)


# -- validating and saving ------------------------------------------------------------------
def validate_change(gateway, target: str, data: Any) -> list[tuple[str, str]]:
    """Run the start-up validation of this one section (core schema, then the owner's).

    :return: ``(key path within the section, reason)`` per problem; empty when it is valid
    :raises UnknownTarget: see :func:`file_section`
    """
    file_section(gateway, target)
    if not isinstance(data, dict):
        return [("", "must be a mapping")]
    odd = _not_plain(data)
    if odd is not None:
        return [(odd, "Use only text, numbers, true/false, null, lists and mappings.")]
    misplaced = misplaced_references(gateway, target, data)
    if misplaced:                           # refused before anything is read
        return misplaced
    kind, name = split_target(target)
    problems: list[tuple[str, str, str]] = []
    resolved = resolve_references(data, "", target, problems)
    if kind == "service":
        check_service(gateway.services[name], resolved, target, "", problems)
    elif courier_adapter(gateway.courier_classes, name, resolved) is None:
        problems.append((target, "adapter", "no installed courier adapter has this name"))
    else:
        config = check_courier(gateway.courier_classes, name, resolved, target, "", problems,
                               gateway.settings["courier_hosts"])
        if config is not None:
            problems.extend((target, "", reason) for reason in _adapter_refusal(
                gateway, name, config))
    return [(path, reason) for _file, path, reason in problems]


def _not_plain(value: Any, path: str = "") -> str | None:
    """The key path of the first value a version cannot store as JSON (a YAML date, say)."""
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            found = inner if not isinstance(key, str) else _not_plain(item, inner)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        return next((found for i, item in enumerate(value)
                     if (found := _not_plain(item, f"{path}.{i}" if path else str(i)))
                     is not None), None)
    if value is None or isinstance(value, str | int | bool):
        return None
    return None if isinstance(value, float) and math.isfinite(value) else path


def _adapter_refusal(gateway, instance: str, config: dict) -> list[str]:
    """What the adapter's constructor (run at start-up too) says against these settings."""
    from .errors import StartupError

    try:
        gateway.courier_classes[config["adapter"]](instance, config)
    except StartupError as exc:
        return [str(exc)]
    return []


def save_version(gateway, target: str, data: dict, author: str,
                 note: str | None = None) -> ConfigVersion | None:
    """Validate and store a new version of ``target``, audited, in one transaction.

    The audit event names the version and the changed key paths, never a value. This node
    applies it at once; the others within about a second.

    :param author: who, as the audit trail names actors (``admin:<username>``)
    :return: the new version, or None when ``data`` equals the effective section
    :raises ChangeRefused: the settings would not pass start-up validation
    :raises UnknownTarget: see :func:`file_section`
    """
    problems = validate_change(gateway, target, data)
    if problems:
        raise ChangeRefused(problems)
    with gateway.db.write() as session:
        changed = changed_paths(effective_section(gateway, target, session), data)
        if not changed:
            return None
        version = ConfigVersion(target=target, data=copy.deepcopy(data), author=author,
                                note=note)
        session.add(version)
        session.flush()
        gateway.track(session, Event("config.change", actor=author, target=target,
                                     details={"version": version.id, "changed": changed},
                                     correlation_id=correlation_id.get()))
    gateway.refresh_config(force=True)
    return version


def rollback(gateway, target: str, version_id: int, author: str) -> ConfigVersion | None:
    """A new version holding an older one's data (version 0: the files' section).

    :raises LookupError: ``target`` has no such version
    :raises ChangeRefused: that data no longer passes validation (a variable it names is gone)
    """
    if version_id == 0:
        data = file_section(gateway, target)
    else:
        with gateway.db.read() as session:
            old = session.get(ConfigVersion, version_id)
            if old is None or old.target != target:
                raise LookupError(f"{target} has no version {version_id}")
            data = old.data
    return save_version(gateway, target, data, author, note=f"rollback to v{version_id}")


def history(gateway, target: str) -> list[HistoryEntry]:
    """Every version of ``target``, newest first, each with its diff from the one before;
    last, version 0: the section of the files."""
    base = file_section(gateway, target)
    with gateway.db.read() as session:
        rows = session.scalars(select(ConfigVersion).where(ConfigVersion.target == target)
                               .order_by(ConfigVersion.id)).all()
    entries = [HistoryEntry(0, None, None, None, base, "")]
    for row in rows:
        schemas = section_schemas(gateway, target, row.data)
        entries.append(HistoryEntry(row.id, row.author, row.note, row.created_at, row.data,
                                    diff(entries[-1].data, row.data, schemas)))
    return entries[::-1]


# -- showing changes without showing secrets -------------------------------------------------
def masked(data: Any, other: Any = None, schemas: list | None = None) -> Any:
    """``data`` with every secret replaced by ``(hidden)`` (``(hidden, changed)`` where
    ``other`` holds another value there): the fields ``schemas`` declare secret, and keys
    named like credentials; a secret's reference is hidden too (it is set, that is all a
    page says). References in other fields (the deploy's ``base_url``) stay."""
    hide = secret_paths(schemas or [], data)
    return _masked(data, other, "", hide)


def _masked(data: Any, other: Any, path: str, hide: set[str]) -> Any:
    if path in hide and data is not None:
        return HIDDEN_CHANGED if other is not None and other != data else HIDDEN
    if isinstance(data, dict) and not is_reference(data):
        other = other if isinstance(other, dict) else {}
        return {key: _masked(value, other.get(key), f"{path}.{key}" if path else str(key),
                             hide) for key, value in data.items()}
    if isinstance(data, list):
        other = other if isinstance(other, list) else []
        return [_masked(v, other[i] if i < len(other) else None,
                        f"{path}.{i}" if path else str(i), hide) for i, v in enumerate(data)]
    return data


def diff(before: dict, after: dict, schemas: list | None = None) -> str:
    """A unified diff of two sections' YAML, secrets hidden (see :func:`masked`)."""
    lines = difflib.unified_diff(_yaml_lines(masked(before, None, schemas)),
                                 _yaml_lines(masked(after, before, schemas)),
                                 "before", "after", lineterm="")
    return "\n".join(lines)


def _yaml_lines(data: Any) -> list[str]:
    if not data:
        return []
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True,
                          default_flow_style=False).splitlines()


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """Dotted key paths of the values that differ, down to the leaves (a reference or a list
    counts as one value; an absent mapping as an empty one)."""
    if before is None and _mapping(after):
        before = {}
    if after is None and _mapping(before):
        after = {}
    if _mapping(before) and _mapping(after):
        out = []
        for key in sorted(set(before) | set(after), key=str):
            out.extend(changed_paths(before.get(key), after.get(key),
                                     f"{path}.{key}" if path else str(key)))
        return out
    return [] if before == after else [path]


def _mapping(value: Any) -> bool:
    return isinstance(value, dict) and not is_reference(value)
