"""The plugin manager of one app, and what it knows about the installed plugins.

The core is built from its own hooks: ``DEFAULT_PLUGINS`` (authentication, permissions, the
audit trail, routing) register through the same hooks as any plugin. Installed plugins come
from the ``gateway`` entry-point group; tests and embedders pass ``plugins=[...]`` to
``create_app`` instead, and then entry points are not read at all. A plugin manager is made
per app, never kept in a module global, so one process can build many apps.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os

import pluggy

from . import hookspecs

DEFAULT_PLUGINS = (
    "gateway.auth",
    "gateway.permissions",
    "gateway.audit",
    "gateway.routing",
    "gateway.console.auth",
    "gateway.console.roles",
    "gateway.couriers.gosend",
    "gateway.couriers.goride",
    "gateway.couriers.grabexpress",
    "gateway.couriers.lalamove",
    "gateway.couriers.own_fleet",
)


def make_plugin_manager(plugins=None) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if plugins is None:
        for name in filter(None, os.environ.get("GATEWAY_DISABLED_PLUGINS", "").split(",")):
            pm.set_blocked(name.strip())
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    else:
        for plugin in plugins:
            pm.register(plugin)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    pm.check_pending()
    return pm


def describe_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Name, version, origin and implemented hooks of every registered plugin."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        out.append({
            "name": name,
            "version": dist.version if dist else None,
            "distribution": dist.project_name if dist else None,
            "default": name in DEFAULT_PLUGINS,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
        })
    return out
