"""The console's services and providers: what is installed, and their settings.

Lists the installed services and courier instances with the plugin and version each comes
from; shows and edits each one's settings through a form generated from its schemas
(``..forms``), and its history of versions with their diffs and rollbacks. Saving goes
through ``gateway.liveconfig``, which validates with the start-up rules, versions and audits
the change, and makes every node and worker pick it up without a restart. Secrets are
write-only: a page says "set", never a value, a variable or a file.
"""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, datetime
from functools import cache

from flask import abort, flash, g, redirect, request, url_for

from ... import liveconfig
from ...liveconfig import ChangeRefused, UnknownTarget, target_of
from ...plugins import HOOK_FAILURES, describe_plugins
from .. import bp, can, gateway, render, requires
from ..forms import errors_by_field, form_data, form_fields
from ..i18n import gettext as _
from ..i18n import service_title

READ, EDIT = "console:config:read", "console:config:edit"


@bp.route("/services")
@requires(READ)
def services():
    gw = gateway()
    rows = [{"name": name, "title": service_title(service),
             "origin": _origin(gw, service),
             "enabled": name in gw.enabled_services(),
             "couriers": [_courier_entry(c) for c in
                          gw.service_settings(name).get("couriers") or []]}
            for name, service in sorted(gw.services.items())]
    couriers = [{"name": name, "adapter": config["adapter"],
                 "origin": _origin(gw, gw.courier_classes[config["adapter"]]),
                 "enabled": config["enabled"], "sandbox": config["sandbox"],
                 "circuit": gw.circuits.state(name)}
                for name, config in sorted(gw.courier_configs.items())]
    failures = [{"at": datetime.fromtimestamp(when, UTC), "plugin": plugin, "hook": hook,
                 "error": error} for when, plugin, hook, error in reversed(HOOK_FAILURES)]
    return render("console/services.html", services=rows, couriers=couriers,
                  hook_failures=failures)


@bp.route("/services/<kind>/<name>/enabled", methods=["POST"])
@requires(EDIT)
def services_enabled(kind, name):
    """Enable or disable a service or a courier: a new version like any other change."""
    target = _target(kind, name)
    enabled = request.form.get("enabled") == "true"
    data = liveconfig.effective_section(gateway(), target)
    data["enabled"] = enabled
    try:
        saved = liveconfig.save_version(gateway(), target, data, _author(),
                                        note="enabled" if enabled else "disabled")
    except ChangeRefused as exc:
        flash(_("Not saved: %(problems)s", problems=str(exc)), "error")
        return redirect(url_for("console.services"))
    if saved is not None:
        flash(_("%(name)s enabled.", name=name) if enabled
              else _("%(name)s disabled.", name=name), "success")
    return redirect(url_for("console.services"))


@bp.route("/services/<kind>/<name>")
@requires(READ)
def services_settings(kind, name):
    target = _target(kind, name)
    section = liveconfig.effective_section(gateway(), target)
    return _settings_page(kind, name, section, [])


@bp.route("/services/<kind>/<name>", methods=["POST"])
@requires(EDIT)
def services_save(kind, name):
    """Save the submitted form as a new version, or show it again with the problems (422)."""
    target = _target(kind, name)
    section = liveconfig.effective_section(gateway(), target)
    fields = form_fields(_schemas(kind, name, section), section)
    data, problems = form_data(fields, request.form, section)
    saved = None
    if not problems:
        note = (request.form.get(":note") or "").strip()[:200] or None
        try:
            saved = liveconfig.save_version(gateway(), target, data, _author(), note=note)
        except ChangeRefused as exc:
            problems = exc.problems
    if problems:
        return _settings_page(kind, name, data, problems, status=422)
    flash(_("Saved as version %(version)s. Every node uses it within seconds.",
            version=saved.id) if saved else _("Nothing changed."), "success")
    return redirect(url_for("console.services_history", kind=kind, name=name))


@bp.route("/services/<kind>/<name>/history")
@requires(READ)
def services_history(kind, name):
    return _history_page(kind, name, [])


@bp.route("/services/<kind>/<name>/rollback", methods=["POST"])
@requires(EDIT)
def services_rollback(kind, name):
    target = _target(kind, name)
    try:
        version = int(request.form.get("version", ""))
        saved = liveconfig.rollback(gateway(), target, version, _author())
    except (ValueError, LookupError):
        abort(404)
    except ChangeRefused as exc:
        return _history_page(kind, name, exc.problems, status=422)
    flash(_("Rolled back to version %(version)s as version %(new)s.", version=version,
            new=saved.id) if saved else _("Nothing changed."), "success")
    return redirect(url_for("console.services_history", kind=kind, name=name))


# -- pages --------------------------------------------------------------------------------
def _settings_page(kind, name, section, problems, status=200):
    fields = form_fields(_schemas(kind, name, section), section)
    errors, general = errors_by_field(fields, problems)
    return render("console/service_settings.html", status, kind=kind, name=name,
                  fields=fields, errors=errors, general_errors=general,
                  editable=can(EDIT), note=request.form.get(":note", ""))


def _history_page(kind, name, problems, status=200):
    entries = liveconfig.history(gateway(), _target(kind, name))
    return render("console/service_history.html", status, kind=kind, name=name,
                  entries=entries, current=entries[0].version, diff_lines=diff_lines,
                  problems=problems, editable=can(EDIT))


def diff_lines(text: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with its class: ``add``, ``del`` or none."""
    out = []
    for line in text.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            out.append(("add", line))
        elif line.startswith("-") and not line.startswith("---"):
            out.append(("del", line))
        else:
            out.append(("", line))
    return out


# -- helpers ------------------------------------------------------------------------------
def _target(kind: str, name: str) -> str:
    """The target of a page, or 404 (also for an unknown kind or name)."""
    if kind not in liveconfig.KINDS:
        abort(404)
    target = target_of(kind, name)
    try:
        liveconfig.file_section(gateway(), target)
    except UnknownTarget:
        abort(404)
    return target


def _schemas(kind: str, name: str, section: dict) -> list:
    """The core's schema of the section, then its owner's (the service's, the adapter's)."""
    return liveconfig.section_schemas(gateway(), target_of(kind, name), section)


def _author() -> str:
    return f"admin:{(g.get('actor') or {}).get('id', 'anonymous')}"


def _courier_entry(entry) -> str:
    if isinstance(entry, dict):
        return " | ".join(f"{name} ({weight})" for name, weight in entry.items())
    return str(entry)


def _origin(gw, obj) -> dict:
    """The plugin that registered ``obj`` (a service, an adapter class): its registered name,
    distribution and version."""
    module = obj.__module__
    best = None
    for plugin_name, plugin in gw.pm.list_name_plugin():
        prefix = getattr(plugin, "__name__", None)
        if isinstance(prefix, str) and (module == prefix or module.startswith(f"{prefix}.")) \
                and (best is None or len(prefix) > len(best[1])):
            best = (plugin_name, prefix)
    info = next((d for d in describe_plugins(gw.pm) if best and d["name"] == best[0]), {})
    distribution, version = info.get("distribution"), info.get("version")
    if distribution is None:
        distribution, version = _distribution(module.partition(".")[0])
    return {"plugin": best[0] if best else module, "distribution": distribution,
            "version": version}


@cache
def _distribution(package: str) -> tuple[str | None, str | None]:
    """The installed distribution that provides a top-level package, and its version."""
    names = importlib.metadata.packages_distributions().get(package) or []
    if not names:
        return None, None
    return names[0], importlib.metadata.version(names[0])
