"""The Gateway: one app's registries, configuration and connections, shared by every part.

Built by ``create_app`` and kept in ``app.extensions["gateway"]``; hooks receive it as
``gateway``. Start-up asks the plugins for their services, couriers and notifiers,
validates each one's settings with its own schema, and refuses to start when anything
disagrees. Settings changed later in the console (``gateway.liveconfig``) are rebuilt the
same way by :meth:`Gateway.refresh_config`, before each request and job, without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from functools import cached_property
from pathlib import Path

from redis import Redis

from . import liveconfig
from .audit import link_at_commit
from .auth import VERSION_KEY, KeyCache, watch_key_changes
from .context import correlation_id as current_correlation_id
from .context import pending_call_audits
from .couriers import CallOutcome
from .couriers.circuit import CircuitBreaker
from .couriers.http import courier_session
from .crypto import IdentifierDigests, Vault, load_or_create_key
from .db import Database, default_database_url
from .errors import StartupError
from .events import Event
from .gatelook import GateLook
from .group_commit import GroupWriter
from .links import Links, public_base_url
from .metrics import GatewayMetrics
from .plugins import PluginError, collect, make_plugin_manager
from .queues import JOBS
from .ratelimit import FailureLimiter, RateLimiter
from .redis_server import EMBEDDED_REDIS_DIR, running_url
from .region import Region
from .services import NAME_PATTERN
from .settings import (
    ConfigError,
    OwnedConfig,
    Settings,
    build_notifier_configs,
    build_owned_config,
)
from .webhook_refusals import WebhookRefusals

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: how often a process looks for settings changed in the console
CONFIG_CHECK_SECONDS = 1.0


class Gateway:
    def __init__(self, settings: Settings, plugins=None, connect: bool = True):
        self.settings = settings
        #: name, time zone, language and currency of the region served (``gateway.region``)
        self.region = Region.from_settings(settings["region"])
        #: counters and histograms (``gateway.metrics``); states are read at scrape time
        self.metrics = GatewayMetrics()
        self.pm = make_plugin_manager(plugins, disabled=settings["plugins"]["disabled"])
        self.services = self._collect("register_services", "service")
        self.courier_classes = self._collect("register_couriers", "courier")
        #: kinds of work plugins owe requests (``register_jobs``), by name
        self.job_kinds = self._collect("register_jobs", "job kind")
        for name in self.job_kinds:
            if name in JOBS or len(name) > 32:   # pending_job holds 32 characters
                raise StartupError(f"a plugin registers a job kind named {name!r}: taken by "
                                   "the core, or longer than 32 characters")
        self.notifier_classes = self._collect("register_notifiers", "notifier")
        self._service_settings: dict[str, dict] = {}
        self.service_configs: dict[str, dict] = {}
        self.courier_configs: dict[str, dict] = {}
        #: the newest console version installed (0: the files alone), and when we last looked
        self._config_version = 0
        self._config_checked_at = float("-inf")
        self._config_lock = threading.Lock()
        owned = self._validate_owned_config()
        self._install(owned)
        #: each enabled ``notifiers.yaml`` entry's validated settings (the files only: the
        #: console does not edit notifiers yet)
        self.notifier_configs = self._validate_notifier_config()
        self.notifiers: dict = {}
        if connect:
            self._connect(owned)

    @classmethod
    def validate_only(cls, settings: Settings) -> None:
        """Load the installed plugins and validate every section; open nothing.

        :raises ConfigError: naming file, key path and reason
        """
        cls(settings, connect=False)

    def _connect(self, owned: OwnedConfig) -> None:
        settings = self.settings
        if settings["mode"] == "live" and not settings["secret_key"]:
            # A generated key is fine for the embedded default; live personal data needs a
            # key the operator holds (and backs up), not one lying in the data directory.
            raise ConfigError([(str(settings.config_dir / "gateway.yaml"), "secret_key",
                                "mode live needs a secret key: set GATEWAY_SECRET_KEY")])
        self.db = Database(settings["database_url"]
                           or default_database_url(settings["data_dir"]))
        #: stores new requests of this process in groups, one transaction each
        self.writer = GroupWriter(
            self.db.write, settings["api"]["group_commit_max"],
            observe=lambda outcome, size: self.metrics.group_sizes.labels(outcome).observe(size))
        key = load_or_create_key(settings["secret_key"], settings["data_dir"])
        self.vault = Vault(key)
        #: keyed digests of personal identifiers for lists in settings (``eligibility_for``)
        self.identifiers = IdentifierDigests(key)
        #: the citizens' links (tracking page, survey) of a request
        self.links = Links(public_base_url(settings), self.vault)
        #: signs console cookies; derived, so the data key itself never signs anything public
        self.cookie_secret = hashlib.sha256(b"gateway console cookies\0" + key.encode()
                                            ).hexdigest()
        #: signs the public survey's forms (``gateway.public``), derived in the same way
        self.form_secret = hashlib.sha256(b"gateway public forms\0" + key.encode()).digest()
        self.rate_limiter = RateLimiter(self.redis, settings["api"]["rate_limits"])
        #: wrong API keys per client address (``gateway.gate``)
        limit = settings["api"]["failed_key_limit"]
        self.failed_keys = FailureLimiter(self.redis, "gateway:failed-keys", limit["attempts"],
                                          limit["window_seconds"])
        #: refused webhooks: counted, logged in sums, held against their source
        self.webhook_refusals = WebhookRefusals(self.redis, settings["webhooks"], self.metrics)
        #: API keys recognised recently (``gateway.auth``); changes anywhere invalidate it
        self.key_cache = KeyCache()
        #: the three checks of a known key in one round trip (``gateway.gate``)
        self.gate_look = GateLook(self.redis, self.failed_keys, self.rate_limiter, VERSION_KEY)
        watch_key_changes(self.db, self.redis)
        link_at_commit(self.db.session_factory)
        self._install(owned, self._make_couriers(owned.courier_configs))
        #: views of the citizens' public pages per client address (``gateway.public``)
        self.public_limiter = RateLimiter(self.redis, {
            "public": settings["public"]["rate_limit"]})
        #: notices per agency (``gateway.notices``): a token bucket of its own kind
        self.notice_limiter = RateLimiter(self.redis, {
            "notice": settings["notices"]["rate_limit"]})
        self.notifiers = {
            instance: self.notifier_classes[config["adapter"]](instance, config)
            for instance, config in self.notifier_configs.items() if config["enabled"]}

    def _courier_called(self, outcome: CallOutcome) -> None:
        """Every provider call feeds the circuit breaker and the provider metrics, and leaves
        an audit record."""
        self.circuits.record(outcome)
        self.metrics.observe_provider_call(outcome)
        event = Event("courier.call", actor="gateway", target=f"courier:{outcome.courier}",
                      outcome=outcome.outcome,
                      details={"operation": outcome.operation, "error": outcome.error,
                               "ms": round(outcome.seconds * 1000, 1)},
                      correlation_id=current_correlation_id.get())
        collected = pending_call_audits.get()
        if collected is not None:
            collected.append(event)     # a batch writes it with the call's answer
            return
        try:
            with self.db.write() as session:
                self.track(session, event)
        except Exception:
            log.exception("could not audit a call to courier %s", outcome.courier)

    # -- start-up -------------------------------------------------------------------------
    def _collect(self, hook_name: str, what: str) -> dict:
        """Every plugin's registrations of one kind, by name; a problem names its plugin."""
        found: dict = {}
        owners: dict = {}
        for plugin, item in collect(self.pm, hook_name, gateway=self):
            name = getattr(item, "name", None)
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                raise PluginError(plugin, f"a {what} has an invalid name: {name!r}",
                                  hook=hook_name)
            if name in found:
                raise StartupError(f"two plugins register a {what} named {name!r}: "
                                   f"{owners[name]!r} and {plugin!r}")
            found[name], owners[name] = item, plugin
        return found

    def _validate_owned_config(self) -> OwnedConfig:
        config_dir = self.settings.config_dir
        files = (str(config_dir / "services.yaml"), str(config_dir / "couriers.yaml"))
        owned, problems = build_owned_config(self.services, self.courier_classes,
                                             self.settings.services, self.settings.couriers,
                                             files, self.settings["courier_hosts"])
        for name in self.settings.services:
            if name not in self.services:
                log.warning("%s: %s: no installed service has this name; ignored",
                            files[0], name)
        if problems:
            raise ConfigError(problems)
        return owned

    def _validate_notifier_config(self) -> dict[str, dict]:
        configs, problems = build_notifier_configs(
            self.notifier_classes, self.settings.notifiers,
            str(self.settings.config_dir / "notifiers.yaml"), self.settings["notifier_hosts"])
        if problems:
            raise ConfigError(problems)
        return configs

    def _install(self, owned: OwnedConfig, couriers: dict | None = None) -> None:
        """Put validated settings (and, once connected, their adapters) in place. Each
        attribute is replaced whole, so a request running meanwhile sees old or new."""
        self._service_settings = owned.service_settings
        self.service_configs = owned.service_configs
        self.courier_configs = owned.courier_configs
        if couriers is not None:
            self.couriers = couriers
            self.circuits = CircuitBreaker(self.redis, {
                name: config["circuit"] for name, config in owned.courier_configs.items()})

    def _make_couriers(self, configs: dict[str, dict]) -> dict:
        """An adapter per enabled instance, bound and observed; one whose settings did not
        change is kept (its connections and cached tokens with it).

        :raises StartupError: an adapter refuses its settings
        """
        current = getattr(self, "couriers", {})
        couriers = {}
        for instance, config in configs.items():
            if not config["enabled"]:
                continue
            adapter = current.get(instance)
            if adapter is None or adapter.config != config:
                adapter = self.courier_classes[config["adapter"]](
                    instance, config,
                    session=courier_session(self.settings["dispatch"]["batch_concurrency"]))
                adapter.bind(self)
                adapter.observer = self._courier_called
            couriers[instance] = adapter
        return couriers

    # -- live configuration ---------------------------------------------------------------
    def refresh_config(self, force: bool = False) -> bool:
        """Pick up settings changed in the console since the last look, without a restart.

        Called before every HTTP request and every job: it looks at most once a second
        (``force`` looks now), with one ``SELECT max(id)``, and rebuilds only when a new
        version exists. It never raises: a version that cannot be applied here (it should
        not happen, saving validates) is logged and the settings in use are kept.

        :return: whether new settings were installed
        """
        now = time.monotonic()
        if not force and now - self._config_checked_at < CONFIG_CHECK_SECONDS:
            return False
        self._config_checked_at = now
        try:
            newest = liveconfig.newest_version_id(self)
        except Exception as exc:
            log.warning("could not look for configuration changes: %s", type(exc).__name__)
            return False
        if newest == self._config_version:
            return False
        with self._config_lock:
            if newest == self._config_version:
                return False
            try:
                owned, newest = liveconfig.load_owned_config(self)
                couriers = self._make_couriers(owned.courier_configs)
            except (ConfigError, StartupError) as exc:   # final for this version: say it once
                log.error("configuration version %s not applied, keeping the settings in "
                          "use:\n%s", newest, exc)
                self._config_version = newest
                return False
            except Exception:                             # the database, say: look again later
                log.exception("configuration version %s not applied, keeping the settings "
                              "in use", newest)
                return False
            self._install(owned, couriers)
            self._config_version = newest
        log.info("configuration version %s applied", newest)
        return True

    # -- lookups --------------------------------------------------------------------------
    def service_settings(self, name: str) -> dict:
        return self._service_settings.get(name, {})

    def enabled_services(self) -> dict:
        return {n: s for n, s in self.services.items()
                if self._service_settings.get(n, {}).get("enabled", True)}

    @property
    def redis_url(self) -> str:
        """The configured Redis; else the one ``gateway up`` runs on this data directory (so a
        command from another shell reaches the same Redis as the running gateway); else the
        local default."""
        return (self.settings["redis_url"]
                or running_url(Path(self.settings["data_dir"]) / EMBEDDED_REDIS_DIR)
                or DEFAULT_REDIS_URL)

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
