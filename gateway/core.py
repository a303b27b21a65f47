"""The Gateway: one app's registries, configuration and connections, shared by every part.

Built by ``create_app`` and kept in ``app.extensions["gateway"]``; hooks receive it as
``gateway``. Start-up asks the plugins for their services and couriers, validates each one's
settings with its own schema, and refuses to start when anything disagrees.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cached_property

from redis import Redis

from .context import correlation_id as current_correlation_id
from .couriers import CallOutcome
from .couriers.circuit import CircuitBreaker
from .crypto import Vault, load_or_create_key
from .db import Database, default_database_url
from .errors import StartupError
from .events import Event
from .plugins import make_plugin_manager
from .ratelimit import RateLimiter
from .services import NAME_PATTERN
from .settings import (
    ConfigError,
    CourierSettingsSchema,
    ServiceSettingsSchema,
    Settings,
    validate_section,
)

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Gateway:
    def __init__(self, settings: Settings, plugins=None, connect: bool = True):
        self.settings = settings
        self.pm = make_plugin_manager(plugins)
        self.services = self._collect("register_services", "service")
        self.courier_classes = self._collect("register_couriers", "courier")
        self._service_settings: dict[str, dict] = {}
        self.service_configs: dict[str, dict] = {}
        self.courier_configs: dict[str, dict] = {}
        self._validate_owned_config()
        if connect:
            self._connect()

    @classmethod
    def validate_only(cls, settings: Settings) -> None:
        """Load the installed plugins and validate every section; open nothing.

        :raises ConfigError: naming file, key path and reason
        """
        cls(settings, connect=False)

    def _connect(self) -> None:
        settings = self.settings
        if settings["mode"] == "live" and not settings["secret_key"]:
            # A generated key is fine for the embedded default; live personal data needs a
            # key the operator holds (and backs up), not one lying in the data directory.
            raise ConfigError([(str(settings.config_dir / "gateway.yaml"), "secret_key",
                                "mode live needs a secret key: set GATEWAY_SECRET_KEY")])
        self.db = Database(settings["database_url"]
                           or default_database_url(settings["data_dir"]))
        key = load_or_create_key(settings["secret_key"], settings["data_dir"])
        self.vault = Vault(key)
        #: signs console cookies; derived, so the data key itself never signs anything public
        self.cookie_secret = hashlib.sha256(b"gateway console cookies\0" + key.encode()
                                            ).hexdigest()
        self.couriers = {}
        for instance, config in self.courier_configs.items():
            if config["enabled"]:
                adapter = self.courier_classes[config["adapter"]](instance, config)
                adapter.bind(self)
                self.couriers[instance] = adapter
        self.rate_limiter = RateLimiter(self.redis, settings["api"]["rate_limits"])
        self.circuits = CircuitBreaker(self.redis, {
            name: config["circuit"] for name, config in self.courier_configs.items()})
        for adapter in self.couriers.values():
            adapter.observer = self._courier_called

    def _courier_called(self, outcome: CallOutcome) -> None:
        """Every provider call feeds the circuit breaker and leaves an audit record."""
        self.circuits.record(outcome)
        try:
            with self.db.write() as session:
                self.track(session, Event(
                    "courier.call", actor="gateway", target=f"courier:{outcome.courier}",
                    outcome=outcome.outcome,
                    details={"operation": outcome.operation, "error": outcome.error,
                             "ms": round(outcome.seconds * 1000, 1)},
                    correlation_id=current_correlation_id.get()))
        except Exception:
            log.exception("could not audit a call to courier %s", outcome.courier)

    # -- start-up -------------------------------------------------------------------------
    def _collect(self, hook_name: str, what: str) -> dict:
        found: dict = {}
        for items in getattr(self.pm.hook, hook_name)(gateway=self):
            for item in items or ():
                name = getattr(item, "name", None)
                if not isinstance(name, str) or not NAME_PATTERN.match(name):
                    raise StartupError(f"a {what} has an invalid name: {name!r}")
                if name in found:
                    raise StartupError(f"two plugins register a {what} named {name!r}")
                found[name] = item
        return found

    def _validate_owned_config(self) -> None:
        problems: list[tuple[str, str, str]] = []
        config_dir = self.settings.config_dir
        services_file = str(config_dir / "services.yaml")
        for name, service in self.services.items():
            raw = dict(self.settings.services.get(name, {}))
            core = validate_section(services_file, name, ServiceSettingsSchema(), raw, problems)
            own_raw = {k: v for k, v in raw.items()
                       if k not in ServiceSettingsSchema().fields}
            own = {}
            if service.config_schema is not None:
                own = validate_section(services_file, name, service.config_schema(), own_raw,
                                       problems)
            self._service_settings[name] = core or {}
            self.service_configs[name] = own or {}
        couriers_file = str(config_dir / "couriers.yaml")
        entries = dict(self.settings.couriers)
        for name, cls in self.courier_classes.items():
            if cls.default_instance and name not in entries:
                entries[name] = {}
        core_keys = set(CourierSettingsSchema().fields)
        for instance, raw in entries.items():
            raw = {**getattr(self.courier_classes.get(raw.get("adapter") or instance),
                             "default_config", {}), **raw}
            core = validate_section(couriers_file, instance, CourierSettingsSchema(), raw,
                                    problems)
            if core is None:
                continue
            cls = self.courier_classes.get(core["adapter"] or instance)
            if cls is None:
                log.warning("%s: %s: no installed courier adapter named %r; ignored",
                            couriers_file, instance, core["adapter"] or instance)
                continue
            own_raw = {k: v for k, v in raw.items() if k not in core_keys}
            own = validate_section(couriers_file, instance, cls.config_schema(), own_raw,
                                   problems) if cls.config_schema else own_raw
            if own is not None:
                self.courier_configs[instance] = {**own, **core, "adapter": cls.name}
        for name in self.settings.services:
            if name not in self.services:
                log.warning("%s: %s: no installed service has this name; ignored",
                            services_file, name)
        if problems:
            raise ConfigError(problems)

    # -- lookups --------------------------------------------------------------------------
    def service_settings(self, name: str) -> dict:
        return self._service_settings.get(name, {})

    def enabled_services(self) -> dict:
        return {n: s for n, s in self.services.items()
                if self._service_settings.get(n, {}).get("enabled", True)}

    @property
    def redis_url(self) -> str:
        return self.settings["redis_url"] or DEFAULT_REDIS_URL

    @cached_property
    def redis(self) -> Redis:
        """The connection for requests and jobs: short timeouts, so a lost Redis makes the
        API answer quickly (the request is already stored) instead of hanging."""
        return Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)

    # -- cross-cutting questions ------------------------------------------------------------
    def allowed(self, actor: dict | None, action: str, resource=None) -> bool:
        """Deny wins; at least one plugin must allow (see the ``permission_allowed`` spec)."""
        opinions = self.pm.hook.permission_allowed(gateway=self, actor=actor, action=action,
                                                   resource=resource)
        return bool(opinions) and all(opinions) and any(o is True for o in opinions)

    def track(self, session, event: Event) -> None:
        self.pm.hook.track_event(gateway=self, event=event, session=session)
