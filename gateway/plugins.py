"""The plugin manager of one app, and what it knows about the installed plugins.

The core is built from its own hooks: ``DEFAULT_PLUGINS`` (authentication, permissions, the
audit trail, routing) register through the same hooks as any plugin. Installed plugins come
from the ``gateway`` entry-point group; tests and embedders pass ``plugins=[...]`` to
``create_app`` instead, and then that group is not read at all. Couriers come from the
``gateway.couriers`` group, the built-in ones (GO-SEND, GO-RIDE, GrabExpress, Lalamove, the
own fleet) exactly as a third party's: they are transport the operator names in
``couriers.yaml``, not a choice of services, so that group is read either way (and so is
``gateway.notifiers``, the WhatsApp and SMS notifiers, for the same reason) (a courier
module also passed in ``plugins`` is registered once). A plugin manager is made per app, never
kept in a module global, so one process can build many apps.

A plugin that cannot be imported, that pluggy refuses, or whose start-up hook raises stops
start-up with a :class:`PluginError` that names the plugin, its distribution and the hook,
and says how to disable it (``plugins: {disabled: [name]}`` in ``gateway.yaml`` or
``GATEWAY_DISABLED_PLUGINS``): one broken optional plugin must never need a code change, nor
be guessed at from a traceback inside pluggy. The traceback is logged at DEBUG
(``log_level: DEBUG``) for the plugin's author; the operator gets one line.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import time
from collections import deque
from collections.abc import Iterable

import pluggy

from . import hookspecs
from .errors import StartupError

log = logging.getLogger(__name__)

DEFAULT_PLUGINS = (
    "gateway.auth",
    "gateway.permissions",
    "gateway.audit",
    "gateway.routing",
    "gateway.notices",
    "gateway.console.auth",
    "gateway.console.roles",
)

#: the entry-point group of courier adapters, read whatever ``plugins`` an app is given
COURIERS_GROUP = f"{hookspecs.PROJECT_NAME}.couriers"
#: the entry-point group of notifiers (WhatsApp, SMS), read the same way as couriers'
NOTIFIERS_GROUP = f"{hookspecs.PROJECT_NAME}.notifiers"

DISABLE_ENV = "GATEWAY_DISABLED_PLUGINS"


class PluginError(StartupError):
    """One plugin stops start-up: ``plugin`` is its name, ``hook`` the hook it failed in
    (None when it failed before any hook ran: its import, or pluggy's checks)."""

    def __init__(self, plugin: str, problem: str, hook: str | None = None,
                 distribution: str | None = None):
        self.plugin, self.hook, self.distribution = plugin, hook, distribution
        origin = f" ({distribution})" if distribution else ""
        where = f" in hook {hook}" if hook else ""
        super().__init__(
            f"plugin {plugin!r}{origin} failed{where}: {problem}. If it is optional, disable "
            f"it with `plugins: {{disabled: [{plugin}]}}` in gateway.yaml or "
            f"{DISABLE_ENV}={plugin}")


def disabled_plugins(configured: Iterable[str] = ()) -> list[str]:
    """Names blocked by ``gateway.yaml`` (``configured``) and by ``$GATEWAY_DISABLED_PLUGINS``."""
    from_env = (name.strip() for name in os.environ.get(DISABLE_ENV, "").split(","))
    return sorted({name for name in (*configured, *from_env) if name})


def _label(impl) -> str:
    """A plugin's name as people know it: an object registered without a name gets its id
    from pluggy, so say its class instead."""
    name = impl.plugin_name
    return f"{type(impl.plugin).__name__} object" if name.isdigit() else name


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _label_of(dist: importlib.metadata.Distribution | None) -> str | None:
    """``"name version"`` of a distribution, as a :class:`PluginError` names it."""
    return f"{dist.name} {dist.version}" if dist is not None else None


def _load_entry_points(pm: pluggy.PluginManager, installed: importlib.metadata.EntryPoints,
                       group: str, disabled: Iterable[str] = ()) -> None:
    """Register the group's installed plugins, one at a time in the order of their names, so a
    failure names its plugin. A disabled name is skipped, and so is a plugin already
    registered under another name (a courier module a test passes in ``plugins`` and also
    installed).

    Not pluggy's ``load_setuptools_entrypoints(group, name=...)``: it reads every installed
    distribution's entry points again for each name (some 60 ms an app here, and every test
    builds an app); ``installed``, every entry point read once per app by
    ``importlib.metadata.entry_points()``, tells each one's distribution, kept for
    :func:`describe_plugins`."""
    disabled = set(disabled)
    entry_points = installed.select(group=group)
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        dist = getattr(entry_point, "dist", None)
        if entry_point.name in disabled or pm.is_blocked(entry_point.name) \
                or pm.has_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            if pm.is_registered(plugin):
                continue
            pm.register(plugin, name=entry_point.name)
        except Exception as exc:
            log.debug("plugin %s could not be loaded", entry_point.name, exc_info=True)
            raise PluginError(entry_point.name, f"it could not be loaded ({_describe(exc)})",
                              distribution=_label_of(dist)) from exc
        if dist is not None:
            _distributions(pm)[id(plugin)] = dist


def _distributions(pm: pluggy.PluginManager) -> dict[int, importlib.metadata.Distribution]:
    """The distribution each installed plugin came from, by the id of the plugin object."""
    return pm.__dict__.setdefault("gateway_distributions", {})


def make_plugin_manager(plugins=None, disabled: Iterable[str] = ()) -> pluggy.PluginManager:
    """The plugin manager of one app.

    :param plugins: plugin objects to register instead of the installed ``gateway`` entry
        points; the installed couriers are loaded either way
    :param disabled: installed plugins not to load (``plugins.disabled`` of gateway.yaml);
        ``$GATEWAY_DISABLED_PLUGINS`` adds to them. Only installed plugins can be disabled.
    :raises PluginError: a plugin cannot be imported or does not fit the hook specs
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    disabled = disabled_plugins(disabled)
    installed = importlib.metadata.entry_points()   # every group: the files are read once
    if plugins is None:
        for name in disabled:
            pm.set_blocked(name)
        _load_entry_points(pm, installed, hookspecs.PROJECT_NAME)
    else:
        for plugin in plugins:
            try:
                pm.register(plugin)
            except pluggy.PluginValidationError as exc:
                raise PluginError(pm.get_canonical_name(plugin), str(exc)) from exc
    _load_entry_points(pm, installed, COURIERS_GROUP, disabled)
    _load_entry_points(pm, installed, NOTIFIERS_GROUP, disabled)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    _check_pending(pm)
    pm.add_hookcall_monitoring(_before_hook, _blame_failed_hook)
    return pm


#: the last hook failures in this process, newest last: ``(when, plugin, hook, error)``
HOOK_FAILURES: deque[tuple[float, str, str, str]] = deque(maxlen=50)


def _before_hook(hook_name, hook_impls, kwargs) -> None:
    pass


def _blame_failed_hook(outcome, hook_name, hook_impls, kwargs) -> None:
    """A hook that raised while the gateway runs (during a request or a job) is logged with
    the plugin it came from, found by walking the traceback to the implementation's code, and
    kept for the console's services page; the exception itself propagates unchanged."""
    exc = outcome.exception
    if exc is None:
        return
    codes = {getattr(impl.function, "__code__", None): impl for impl in hook_impls}
    culprit = None
    frame = exc.__traceback__
    while frame is not None:
        impl = codes.get(frame.tb_frame.f_code)
        if impl is not None:
            culprit = impl
        frame = frame.tb_next
    plugin = _label(culprit) if culprit is not None else "unknown plugin"
    HOOK_FAILURES.append((time.time(), plugin, hook_name, type(exc).__name__))
    log.error("plugin %s failed in hook %s: %s", plugin, hook_name, type(exc).__name__)


def _check_pending(pm: pluggy.PluginManager) -> None:
    """pluggy's ``check_pending``, saying which plugin implements which unknown hook."""
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                raise PluginError(_label(impl), f"it implements {name!r}, which is not a hook "
                                  "of the gateway (misspelt?)",
                                  distribution=_label_of(_distributions(pm).get(id(impl.plugin))))


def collect(pm: pluggy.PluginManager, hook_name: str, **kwargs) -> list[tuple[str, object]]:
    """Call a ``register_<things>`` hook and say which plugin returned each item.

    Each implementation is called on its own, in pluggy's order, with the arguments it asks
    for, so that an exception, or a result that is not a list, is blamed on its plugin.

    :return: ``(plugin name, item)`` for every item of every list
    :raises PluginError: an implementation raised or returned something other than a list
    """
    hook = getattr(pm.hook, hook_name)
    found: list[tuple[str, object]] = []
    for impl in reversed(hook.get_hookimpls()):
        plugin = _label(impl)
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(plugin, "a wrapper cannot wrap a register hook",
                              hook=hook_name)
        try:
            items = impl.function(*(kwargs[name] for name in impl.argnames))
        except Exception as exc:
            log.debug("plugin %s failed in hook %s", plugin, hook_name, exc_info=True)
            raise PluginError(plugin, _describe(exc), hook=hook_name) from exc
        if items is None:
            continue
        if isinstance(items, str | bytes | dict) or not isinstance(items, Iterable):
            raise PluginError(plugin, f"it returned {type(items).__name__}, not a "
                              "list", hook=hook_name)
        found.extend((plugin, item) for item in items)
    return found


def describe_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Name, version, origin and implemented hooks of every registered plugin."""
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:
            continue
        dist = _distributions(pm).get(id(plugin))
        out.append({
            "name": name,
            "version": dist.version if dist else None,
            "distribution": dist.name if dist else None,
            "default": name in DEFAULT_PLUGINS,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
        })
    return out
