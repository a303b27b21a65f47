"""Declarative configuration: YAML files in one directory, validated by their owners' schemas.

The directory is ``$GATEWAY_CONFIG`` (default ``config/``). It holds:

* ``gateway.yaml``  -- the core's settings (:class:`CoreConfigSchema`);
* ``services.yaml`` -- one mapping per service, keyed by service name, validated by the core's
  :class:`ServiceSettingsSchema` plus the service plugin's own ``config_schema``;
* ``couriers.yaml`` -- one mapping per courier adapter, keyed by adapter name, validated by the
  adapter's own ``config_schema``;
* ``notifiers.yaml`` -- one mapping per notifier instance (WhatsApp, SMS), validated by the
  notifier's own ``config_schema`` (``gateway.notifiers``), with the couriers' rules: secrets
  as references, URLs only to ``notifier_hosts`` or, for a sandbox entry, this machine.

Secrets are never written in these files: a value may be ``{"$env": "NAME"}`` (optionally
with ``default``) or ``{"$file": "path"}``, resolved at load time. The files are the deploy's
own, so a reference may stand anywhere in them; settings changed in the console may hold one
only in a field declared secret (``gateway.references``). Couriers may call only the
origins listed in ``courier_hosts`` (``gateway.origins``). A bad file stops start-up
with a :class:`ConfigError` naming the file, the key path and the reason. This module never
opens a database or a network connection, so ``gateway config check`` can run anywhere.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from . import origins, region

log = logging.getLogger(__name__)

CONFIG_FILES = ("gateway.yaml", "services.yaml", "couriers.yaml", "notifiers.yaml")

#: the notices a service can send its citizens (``gateway.notices``)
NOTICE_KINDS = ("accepted", "courier_assigned", "pin", "delivered", "failed")
#: who gets a service's handover PIN (``pin_recipient`` in ``services.yaml``)
PIN_RECIPIENTS = ("patient", "agency", "both")

#: the files of one mapping per entry, validated by their owners once plugins are known
SECTION_FILES = ("services", "couriers", "notifiers")

ENV_OVERRIDES = {
    "GATEWAY_DATABASE_URL": "database_url",
    "GATEWAY_REDIS_URL": "redis_url",
    "GATEWAY_HOST": "host",
    "GATEWAY_PORT": "port",
    "GATEWAY_DATA_DIR": "data_dir",
    "GATEWAY_LOG_FORMAT": "log_format",
    "GATEWAY_TRUSTED_PROXIES": "trusted_proxies",
}


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` lists ``(file, key path, reason)``."""

    def __init__(self, problems: list[tuple[str, str, str]], settings: Settings | None = None):
        self.problems = problems
        #: what could be read despite the problems, so a checker can report on the rest too
        self.settings = settings
        super().__init__("\n".join(f"{f}: {path or '(top level)'}: {reason}"
                                   for f, path, reason in problems))


# libyaml's safe loader where PyYAML was built with it (its wheels are): the same documents
# and errors, some 25 times faster than the pure-Python one (about 20 ms a file here), and
# every app built (each test builds one) reads three files.
SAFE_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RetrySchema(Schema):
    class Meta:
        unknown = RAISE

    intervals = fields.List(fields.Integer(strict=True, validate=validate.Range(min=0)),
                            load_default=[5, 30, 120, 600],
                            metadata={"description": "Seconds between retries of a job."})
    job_timeout = fields.Integer(strict=True, load_default=60, validate=validate.Range(min=1))
    worker_ttl = fields.Integer(strict=True, load_default=30, validate=validate.Range(min=20),
                                metadata={"description": "Seconds after a worker's last "
                                                         "heartbeat before its jobs count as "
                                                         "lost (the sweep requeues them)."})
    report_batch_size = fields.Integer(
        strict=True, load_default=50, validate=validate.Range(min=0, max=1000),
        metadata={"description": "Provider reports one report job applies in a run, each in "
                                 "its own transaction (gateway.tracking); 0: one job per "
                                 "report."})
    max_queue_age_seconds = fields.Integer(
        strict=True, load_default=120, validate=validate.Range(min=1),
        metadata={"description": "A queue whose oldest waiting job is older than this is "
                                 "falling behind: /readyz says lagging, the console warns."})
    background_nice = fields.Integer(
        strict=True, load_default=10, validate=validate.Range(min=0, max=19),
        metadata={"description": "How much lower a CPU priority (nice) `gateway up` gives its "
                                 "workers and courier simulators than its API: under a burst "
                                 "the API answers first and the workers catch up after it; "
                                 "0: all alike."})


def _network(value) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(value)
    except ValueError as exc:
        raise ValidationError(f"not a network: {exc}") from exc
    return True


class CallbackSchema(Schema):
    """Agency callbacks: their own queue and workers, short timeouts, a cap per agency, a
    circuit per host; retried with backoff on network errors, 5xx and 429
    (``gateway.callbacks``, ``gateway.urlguard``)."""

    class Meta:
        unknown = RAISE

    intervals = fields.List(fields.Integer(strict=True, validate=validate.Range(min=0)),
                            load_default=[10, 60, 300, 900, 3600])
    connect_timeout_seconds = fields.Float(
        load_default=3.0, validate=validate.Range(min=0.1, max=30),
        metadata={"description": "Seconds to connect to an agency's endpoint."})
    timeout_seconds = fields.Float(
        load_default=5.0, validate=validate.Range(min=0.1, max=60),
        metadata={"description": "Seconds an agency's endpoint has to answer once connected; "
                                 "a slower one counts as no answer (retried). The job's own "
                                 "timeout bounds an endpoint that sends its answer byte by "
                                 "byte."})
    agency_concurrency = fields.Integer(
        strict=True, load_default=2, validate=validate.Range(min=1, max=64),
        metadata={"description": "Callbacks of one agency queued or being delivered at once; "
                                 "the rest wait their turn without taking a worker."})
    workers = fields.Integer(
        strict=True, load_default=4, validate=validate.Range(min=0, max=64),
        metadata={"description": "Callback deliveries one `gateway worker` process makes at "
                                 "once (threads, each an rq worker on the callbacks queue); "
                                 "more than agency_concurrency, so a slow agency never takes "
                                 "them all."})
    circuit = fields.Nested(lambda: CircuitSchema(), load_default=lambda: CircuitSchema().load(
        {"failure_threshold": 3, "window_seconds": 60, "cooldown_seconds": 30}),
        metadata={"description": "Per callback host: after this many failed deliveries "
                                 "(no answer, 5xx, 429) the host gets none for the cooldown."})
    require_https = fields.Boolean(
        load_default=None, allow_none=True,
        metadata={"description": "Callback URLs must be https. Default: yes in mode live."})
    allowed_networks = fields.List(
        fields.String(validate=_network), load_default=None, allow_none=True,
        metadata={"description": "Non-public networks callbacks may reach (CIDR). Default: "
                                 "none in mode live; loopback in sandbox (local receivers). "
                                 "Link-local and metadata addresses are refused whatever "
                                 "this says."})


class DispatchSchema(Schema):
    class Meta:
        unknown = RAISE

    temporary_tries_per_courier = fields.Integer(
        strict=True, load_default=3, validate=validate.Range(min=1),
        metadata={"description": "Temporary errors at one courier before failing over."})
    reconcile_patience_seconds = fields.Integer(
        strict=True, load_default=600, validate=validate.Range(min=0),
        metadata={"description": "How long to wait for a courier with no lookup to report a "
                                 "booking whose create answer was lost."})
    poll_after_seconds = fields.Integer(
        strict=True, load_default=300, validate=validate.Range(min=1),
        metadata={"description": "Ask the courier when no report came for this long."})
    batch_size = fields.Integer(
        strict=True, load_default=25, validate=validate.Range(min=0, max=500),
        metadata={"description": "Requests a dispatch job books at once on their first try "
                                 "(gateway.batch); 0: one job per request."})
    batch_concurrency = fields.Integer(
        strict=True, load_default=8, validate=validate.Range(min=1, max=64),
        metadata={"description": "Provider calls one batch makes at the same time (each "
                                 "courier's HTTP connection pool holds at least as many)."})


class SweepSchema(Schema):
    class Meta:
        unknown = RAISE

    interval_seconds = fields.Integer(strict=True, load_default=15, validate=validate.Range(min=1))
    stale_after_seconds = fields.Integer(strict=True, load_default=30,
                                         validate=validate.Range(min=1))


class BucketSchema(Schema):
    class Meta:
        unknown = RAISE

    rate = fields.Float(required=True, validate=validate.Range(min=0.01),
                        metadata={"description": "Calls per second, sustained."})
    burst = fields.Integer(required=True, strict=True, validate=validate.Range(min=1),
                           metadata={"description": "Calls allowed at once."})


class FailedKeyLimitSchema(Schema):
    """Calls with a wrong API key, per client address: past the limit the address gets 429
    ``too_many_failed_keys`` until its window ends."""

    class Meta:
        unknown = RAISE

    attempts = fields.Integer(strict=True, load_default=20, validate=validate.Range(min=1),
                              metadata={"description": "Wrong keys allowed per window."})
    window_seconds = fields.Integer(strict=True, load_default=300,
                                    validate=validate.Range(min=1, max=86400),
                                    metadata={"description": "The window, from the first "
                                                             "wrong key."})


class ApiSchema(Schema):
    class Meta:
        unknown = RAISE

    rate_limits = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["live", "test"])),
        values=fields.Nested(BucketSchema),
        load_default=lambda: {"live": {"rate": 50.0, "burst": 200},
                              "test": {"rate": 10.0, "burst": 50}},
        metadata={"description": "Per agency and key type, a token bucket."})
    failed_key_limit = fields.Nested(FailedKeyLimitSchema,
                                     load_default=lambda: FailedKeyLimitSchema().load({}))

    max_body_bytes = fields.Integer(strict=True, load_default=256 * 1024,
                                    validate=validate.Range(min=1024))
    group_commit_max = fields.Integer(
        strict=True, load_default=64, validate=validate.Range(min=1, max=1000),
        metadata={"description": "The most new requests and webhooks stored in one "
                                 "transaction by a process's writer "
                                 "(gateway.group_commit); 1: each in its own."})
    default_page_size = fields.Integer(strict=True, load_default=50,
                                       validate=validate.Range(min=1, max=500))
    max_page_size = fields.Integer(strict=True, load_default=200,
                                   validate=validate.Range(min=1, max=1000))


class WebhooksSchema(Schema):
    """``POST /webhooks/<courier>``: what a body may be, and how long a source that keeps
    sending webhooks that are refused is made to wait (see ``gateway.api.webhooks``)."""

    class Meta:
        unknown = RAISE

    max_body_bytes = fields.Integer(strict=True, load_default=64 * 1024,
                                    validate=validate.Range(min=1024), metadata={
        "description": "Larger bodies are refused (413) before they are read in full."})
    max_depth = fields.Integer(strict=True, load_default=32, validate=validate.Range(
        min=2, max=512), metadata={
        "description": "JSON nested deeper is refused (400) before it is parsed."})
    max_rejections_per_source = fields.Integer(
        strict=True, load_default=30, validate=validate.Range(min=1), metadata={
            "description": "Refused webhooks from one address (IPv6: its /64) in a window, "
                           "after which it is answered 429 until the window ends."})
    rejection_window_seconds = fields.Integer(
        strict=True, load_default=60, validate=validate.Range(min=1, max=3600))
    log_every_seconds = fields.Integer(
        strict=True, load_default=60, validate=validate.Range(min=1), metadata={
            "description": "At most one log line per courier and reason in this time; it "
                           "says how many refusals it stands for."})
    silence_alert_seconds = fields.Integer(
        strict=True, load_default=1800, validate=validate.Range(min=60), metadata={
            "description": "A courier that takes webhooks and carries bookings but has sent "
                           "none accepted for this long is flagged silent (the metric "
                           "gateway_webhook_silent and a warning on the console's "
                           "dashboard): its provider may have disabled our URL."})


class DemoSchema(Schema):
    """The demo agency that ``gateway up`` creates on the embedded default."""

    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=False)
    agency_name = fields.String(load_default="Demo agency")
    services = fields.List(fields.String(), load_default=list)
    api_key = fields.String(load_default=None, allow_none=True,
                            metadata={"description": "A clearly marked demo test key."})
    admin_username = fields.String(load_default=None, allow_none=True, metadata={
        "description": "A console admin created on the embedded default (sandbox only)."})
    admin_password = fields.String(load_default=None, allow_none=True, metadata={
        "description": "Its password: a public demo value, never for a real deployment."})


# werkzeug's scrypt default: N=2**15, r=8, p=1 (32 MiB and about a quarter second a hash).
DEFAULT_PASSWORD_HASH = "scrypt:32768:8:1"  # noqa: S105 (a hashing method)
_SCRYPT_METHOD = re.compile(r"^scrypt:(\d+):(\d+):(\d+)$")


def scrypt_cost(method: str) -> tuple[int, int, int] | None:
    """``(N, r, p)`` of a werkzeug ``scrypt:N:r:p`` method, or None when it is not one."""
    match = _SCRYPT_METHOD.match(method)
    return tuple(int(part) for part in match.groups()) if match else None


def validate_password_hash(method: str) -> None:
    cost = scrypt_cost(method)
    if cost is None or cost[0] < 2 or cost[0] & (cost[0] - 1) or not all(cost):
        raise ValidationError("use 'scrypt:N:r:p' with N a power of two, e.g. "
                              f"{DEFAULT_PASSWORD_HASH!r}")


class ConsoleSchema(Schema):
    class Meta:
        unknown = RAISE

    secure_cookies = fields.Boolean(load_default=None, allow_none=True, metadata={
        "description": "Send the console cookie over HTTPS only. Default: on in mode live."})
    password_hash = fields.String(
        load_default=DEFAULT_PASSWORD_HASH, validate=validate_password_hash, metadata={
            "description": "How console passwords are hashed, in werkzeug's notation: "
                           f"{DEFAULT_PASSWORD_HASH!r} (the default) or a stronger "
                           "'scrypt:N:r:p'. A weaker cost is refused in mode live; the test "
                           "suite uses a cheap one so that its hundreds of sign-ins do not "
                           "spend minutes hashing."})
    map_tiles_url = fields.String(
        load_default="", validate=validate.Regexp(
            r"^(https?://[^\s'\";,<>]+)?$", error="An http(s) URL template, or empty."),
        metadata={"description": "The tile server of the console's maps, as a Leaflet URL "
                                 "template (https://tiles.example/{z}/{x}/{y}.png). Empty: "
                                 "no tiles; a point is still shown on a blank map."})


class MetricsSchema(Schema):
    """``GET /metrics``: who may scrape it (see ``gateway.metrics``)."""

    class Meta:
        unknown = RAISE

    token = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=16),
                          metadata={"secret": True,
                                    "description": "A secret reference ({$env: NAME}): "
                                                   "scrapers send 'Authorization: Bearer "
                                                   "<token>'. Unset: loopback callers only."})


class PluginsSchema(Schema):
    """Which installed plugins to leave out: a broken optional plugin is switched off here,
    without a code change (``$GATEWAY_DISABLED_PLUGINS`` adds names too)."""

    class Meta:
        unknown = RAISE

    disabled = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list,
                           metadata={"description": "Entry-point names of installed plugins "
                                                    "not to load (see `gateway plugins`)."})


class AuditSchema(Schema):
    """Signed checkpoints of the audit chain, kept outside the database
    (``gateway.checkpoints``)."""

    class Meta:
        unknown = RAISE

    checkpoint_dir = fields.String(load_default=None, allow_none=True, metadata={
        "description": "Where the append-only checkpoint file lives. Default: "
                       "<data_dir>/audit."})
    signing_key = fields.String(load_default=None, allow_none=True, metadata={
        "description": "The Ed25519 private key (PEM) that signs checkpoints; made on first "
                       "use. Default: <checkpoint_dir>/checkpoint-signing.key. Keep it where "
                       "the database's writers cannot read it."})
    public_key = fields.String(load_default=None, allow_none=True, metadata={
        "description": "The public key `gateway audit verify` checks checkpoints with. "
                       "Default: the signing key's path with .pub."})
    checkpoint_interval_seconds = fields.Integer(
        strict=True, load_default=60, validate=validate.Range(min=0), metadata={
            "description": "Least time between two checkpoints; records newer than the last "
                           "checkpoint are not anchored yet."})
    checkpoint_in_worker = fields.Boolean(load_default=True, metadata={
        "description": "Workers write checkpoints in their periodic sweep (the embedded "
                       "default). false: run `gateway audit checkpoint --every N` as "
                       "another user or on another host, which holds the key."})


def _time_zone(value) -> bool:
    try:
        region.zone(value)
    except ValueError as exc:
        raise ValidationError(f"{exc} (e.g. Asia/Jakarta, Asia/Makassar, Asia/Jayapura)"
                              ) from None
    return True


def _currency(value) -> bool:
    from babel.numbers import list_currencies

    if value not in list_currencies():
        raise ValidationError("not an ISO 4217 currency code (e.g. IDR)")
    return True


class RegionSchema(Schema):
    """The region this gateway serves (``gateway.region``): the console shows times in its
    zone, counts "today" by its calendar and speaks its language first. The API always
    speaks UTC."""

    class Meta:
        unknown = RAISE

    name = fields.String(load_default=region.DEFAULTS["name"], validate=validate.Length(
        min=1, max=120), metadata={"description": "Shown in the console's footer."})
    time_zone = fields.String(load_default=region.DEFAULTS["time_zone"], validate=_time_zone,
                              metadata={"description": "IANA zone: Asia/Jakarta (WIB), "
                                                       "Asia/Makassar (WITA), Asia/Jayapura "
                                                       "(WIT)."})
    locale = fields.String(load_default=region.DEFAULTS["locale"],
                           validate=validate.OneOf(["id", "en"]), metadata={
        "description": "The console's language until a person chooses one."})
    currency = fields.String(load_default=region.DEFAULTS["currency"], validate=_currency,
                             metadata={"description": "ISO 4217 code of amounts shown to "
                                                      "people."})


def _clock(value) -> bool:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValidationError("a time of day HH:MM (24 hours), e.g. 21:00")
    return True


class QuietHoursSchema(Schema):
    class Meta:
        unknown = RAISE

    start = fields.String(load_default="21:00", validate=_clock)
    end = fields.String(load_default="07:00", validate=_clock)


class NoticesSchema(Schema):
    """Citizen notices (``gateway.notices``): which channels in which order, when WhatsApp
    gives way to SMS, quiet hours, the per-agency rate."""

    class Meta:
        unknown = RAISE

    channels = fields.List(fields.String(validate=validate.OneOf(["whatsapp", "sms"])),
                           load_default=lambda: ["whatsapp", "sms"],
                           validate=validate.Length(min=1), metadata={
        "description": "Channels to try, in order: the next one only when the one before "
                       "failed or was not delivered in time."})
    fallback_after_seconds = fields.Integer(
        strict=True, load_default=600, validate=validate.Range(min=10, max=86400), metadata={
            "description": "A message not delivered (nor read) this long after it was sent "
                           "goes by the next channel."})
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True,
                                load_default=lambda: QuietHoursSchema().load({}), metadata={
        "description": "Local time (the region's zone) when non-urgent notices are held "
                       "until the end; null: none."})
    rate_limit = fields.Nested(BucketSchema, load_default=lambda: {"rate": 5.0, "burst": 50},
                               metadata={"description": "Notices one agency may send, a "
                                                        "token bucket per agency."})


def _public_base_url(value) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment or "@" in parts.netloc:
        raise ValidationError("an http(s) URL without query, e.g. https://layanan.example.go.id")
    return True


class PublicSchema(Schema):
    """The citizens' public pages (``gateway.public``): the tracking page ``/t/<token>`` and
    the satisfaction survey ``/s/<token>``."""

    class Meta:
        unknown = RAISE

    base_url = fields.String(load_default=None, allow_none=True, validate=_public_base_url,
                             metadata={"description": "Where citizens reach this gateway: "
                                                      "the start of every tracking and "
                                                      "survey link; null: http://host:port "
                                                      "of this gateway (a local try-out)."})
    tracking_days_after_end = fields.Integer(
        strict=True, load_default=14, validate=validate.Range(min=0, max=365), metadata={
            "description": "Days after a request ended (delivered, failed, cancelled) that "
                           "its tracking page and survey still answer; then 404."})
    rate_limit = fields.Nested(BucketSchema, load_default=lambda: {"rate": 1.0, "burst": 30},
                               metadata={"description": "Public page views per client "
                                                        "address, a token bucket."})

    @post_load
    def _strip_slash(self, data, **kwargs):
        if data["base_url"]:
            data["base_url"] = data["base_url"].rstrip("/")
        return data


class CourierOrigin(fields.String):
    """``scheme://host[:port]``: an origin couriers may call, normalised to its parsed form."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return str(origins.parse_origin(super()._deserialize(value, attr, data, **kwargs)))
        except origins.UnsafeUrl as exc:
            raise ValidationError(f"Not an origin (scheme://host[:port]): {exc}.") from None


class CoreConfigSchema(Schema):
    """``gateway.yaml``."""

    class Meta:
        unknown = RAISE

    data_dir = fields.String(load_default="data")
    database_url = fields.String(load_default=None, allow_none=True)
    redis_url = fields.String(load_default=None, allow_none=True)
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8080, validate=validate.Range(min=1, max=65535))
    trusted_proxies = fields.Integer(load_default=0, validate=validate.Range(min=0, max=5),
                                     metadata={"description": "How many reverse proxies in "
                                                              "front of the gateway add "
                                                              "X-Forwarded-For/-Proto; 0: "
                                                              "none, the headers are ignored."})
    mode = fields.String(load_default="sandbox", validate=validate.OneOf(["sandbox", "live"]),
                         metadata={"description": "sandbox: every request goes to simulators."})
    secret_key = fields.String(load_default=None, allow_none=True,
                               metadata={"description": "Key for personal data at rest.",
                                         "secret": True})
    courier_hosts = fields.List(CourierOrigin(), load_default=list, metadata={
        "description": "The origins (scheme://host[:port]) couriers may call: every URL in "
                       "a courier's settings must be one of them, compared by scheme, host "
                       "and port. Sandbox entries may also call simulators on this machine. "
                       "Only this file sets it; the console cannot."})
    notifier_hosts = fields.List(CourierOrigin(), load_default=list, metadata={
        "description": "The origins (scheme://host[:port]) notifiers (WhatsApp, SMS) may "
                       "call, as courier_hosts for couriers. Only this file sets it."})
    notices = fields.Nested(NoticesSchema, load_default=lambda: NoticesSchema().load({}))
    public = fields.Nested(PublicSchema, load_default=lambda: PublicSchema().load({}))
    log_level = fields.String(load_default="INFO",
                              validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]))
    log_format = fields.String(load_default="text", validate=validate.OneOf(["json", "text"]),
                               metadata={"description": "json: one object per line, for a log "
                                                        "collector (production); text: for "
                                                        "people at a terminal."})
    jobs = fields.Nested(RetrySchema, load_default=lambda: RetrySchema().load({}))
    callbacks = fields.Nested(CallbackSchema, load_default=lambda: CallbackSchema().load({}))
    dispatch = fields.Nested(DispatchSchema, load_default=lambda: DispatchSchema().load({}))
    sweep = fields.Nested(SweepSchema, load_default=lambda: SweepSchema().load({}))
    api = fields.Nested(ApiSchema, load_default=lambda: ApiSchema().load({}))
    webhooks = fields.Nested(WebhooksSchema, load_default=lambda: WebhooksSchema().load({}))
    demo = fields.Nested(DemoSchema, load_default=lambda: DemoSchema().load({}))
    console = fields.Nested(ConsoleSchema, load_default=lambda: ConsoleSchema().load({}))
    plugins = fields.Nested(PluginsSchema, load_default=lambda: PluginsSchema().load({}))
    metrics = fields.Nested(MetricsSchema, load_default=lambda: MetricsSchema().load({}))
    audit = fields.Nested(AuditSchema, load_default=lambda: AuditSchema().load({}))
    region = fields.Nested(RegionSchema, load_default=lambda: RegionSchema().load({}))

    @validates_schema
    def _live_passwords_keep_their_cost(self, data, **kwargs):
        """A cheap hash is for the test suite; a live deploy keeps at least the default."""
        method = data.get("console", {}).get("password_hash", DEFAULT_PASSWORD_HASH)
        if data.get("mode") == "live" and scrypt_cost(method) < scrypt_cost(
                DEFAULT_PASSWORD_HASH):
            raise ValidationError({"console": {"password_hash": [
                f"mode live needs at least {DEFAULT_PASSWORD_HASH!r}"]}})


class CourierEntry(fields.Field):
    """A courier name, or a group ``{name: weight, ...}`` tried in a weighted random order."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and value and all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
                for k, v in value.items()):
            return dict(value)
        raise ValidationError("Must be a courier name or a mapping of names to positive "
                              "integer weights.")


class ServiceSettingsSchema(Schema):
    """The part of each ``services.yaml`` entry that the core reads; the rest is the plugin's."""

    class Meta:
        unknown = EXCLUDE

    enabled = fields.Boolean(load_default=True)
    retention_days = fields.Integer(strict=True, load_default=90,
                                    validate=validate.Range(min=1, max=3650), metadata={
        "description": "Days after a request ends before its personal data is purged."})
    target_minutes = fields.Integer(
        strict=True, load_default=120, allow_none=True,
        validate=validate.Range(min=1, max=30 * 24 * 60), metadata={
            "description": "Minutes from acceptance to delivery that count as on time on the "
                           "console's dashboard; null: not measured (e.g. rides booked "
                           "ahead)."})
    notices = fields.List(fields.String(validate=validate.OneOf(NOTICE_KINDS)),
                          load_default=list, metadata={
        "description": "Notices sent to the citizen by WhatsApp or SMS at these steps "
                       "(gateway.notices); none by default."})
    pin_recipient = fields.String(
        load_default="patient", validate=validate.OneOf(PIN_RECIPIENTS), metadata={
            "description": "For a service with a handover PIN: who gets it. patient: a "
                           "notice to the citizen (WhatsApp, then SMS) and the API answer "
                           "leaves it out (unless no notifier is configured); agency: only "
                           "in the API answer (the agency tells the citizen); both."})
    office_phone = fields.String(
        load_default=None, allow_none=True,
        validate=validate.Regexp(r"\+?[0-9 ()-]{5,20}\Z"), metadata={
            "description": "The phone a citizen calls when a delivery failed, said in the "
                           "failed notice when the request's pickup place has none (rides; "
                           "places without a phone), beside the agency's name."})
    couriers = fields.List(CourierEntry(), load_default=list, metadata={
        "description": "Couriers to try, in order; a {name: weight} group is tried in a "
                       "weighted random order (e.g. to share traffic between providers)."})
    routing_policy = fields.String(
        load_default="ordered", validate=validate.OneOf(["ordered", "cheapest", "fastest"]),
        metadata={"description": "ordered: the couriers list's order; cheapest: the cheapest "
                                 "quote whose estimate meets target_minutes first; fastest: "
                                 "the quickest estimate first (gateway.costs)."})
    on_budget_exhausted = fields.String(
        load_default="refuse", validate=validate.OneOf(["refuse", "hold"]), metadata={
            "description": "When the agency's budget for the service is used up: refuse new "
                           "requests (budget_exhausted) or hold them for approval in the "
                           "console."})


class CircuitSchema(Schema):
    class Meta:
        unknown = RAISE

    failure_threshold = fields.Integer(strict=True, load_default=5, validate=validate.Range(min=1))
    window_seconds = fields.Integer(strict=True, load_default=60, validate=validate.Range(min=1))
    cooldown_seconds = fields.Integer(strict=True, load_default=30,
                                      validate=validate.Range(min=1))


class LimitsSchema(Schema):
    """What one courier (its vehicles) can carry; routing skips it for bigger orders."""

    class Meta:
        unknown = RAISE

    max_weight_grams = fields.Integer(strict=True, validate=validate.Range(min=1))
    max_side_cm = fields.Integer(strict=True, validate=validate.Range(min=1))
    max_passengers = fields.Integer(strict=True, validate=validate.Range(min=1))


class ProviderSettingsSchema(Schema):
    """What the core reads of every provider entry, a courier's or a notifier's; the rest of
    the entry is the adapter's."""

    class Meta:
        unknown = EXCLUDE

    adapter = fields.String(load_default=None, metadata={
        "description": "The adapter type; defaults to the entry's name."})
    enabled = fields.Boolean(load_default=True)
    sandbox = fields.Boolean(load_default=False, metadata={
        "description": "This entry talks to a simulator: the only kind test keys reach."})
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=120))


class CourierSettingsSchema(ProviderSettingsSchema):
    """The part of each ``couriers.yaml`` entry that the core reads; the rest is the adapter's."""
    circuit = fields.Nested(CircuitSchema, load_default=lambda: CircuitSchema().load({}))
    limits = fields.Nested(LimitsSchema, load_default=dict)
    proof_hosts = fields.List(CourierOrigin(), load_default=list, metadata={
        "description": "Origins (scheme://host[:port]) this courier's proof-of-delivery "
                       "images may be fetched from; a sandbox entry may also fetch from its "
                       "own simulator (its base_url on this machine)."})
    proof_max_bytes = fields.Integer(load_default=5_000_000,
                                     validate=validate.Range(min=1024, max=50_000_000))


@dataclass
class Settings:
    """Loaded, resolved and core-validated configuration.

    ``services`` and ``couriers`` are resolved but not yet validated here: their owners'
    schemas are applied by the gateway once the plugins are known. ``raw_services`` and
    ``raw_couriers`` are the same sections (overrides included) with their secret references
    unresolved: what the console shows and saves, so a secret's value never leaves the
    process that uses it.
    """

    config_dir: Path
    core: dict[str, Any]
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    couriers: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_services: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_couriers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_notifiers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, key):
        return self.core[key]


def default_config_dir() -> Path:
    return Path(os.environ.get("GATEWAY_CONFIG", "config"))


def resolve_references(value: Any, path: str, file: str, problems: list) -> Any:
    """Replace ``{"$env": NAME}`` and ``{"$file": PATH}`` by what they point at."""
    if isinstance(value, dict):
        if "$env" in value:
            name = value["$env"]
            if name in os.environ:
                return os.environ[name]
            if "default" in value:
                return value["default"]
            problems.append((file, path, f"environment variable {name} is not set"))
            return None
        if "$file" in value:
            try:
                return _read_secret_file(value["$file"])
            except (OSError, ValueError) as exc:
                problems.append((file, path, "cannot read secret file: "
                                 f"{getattr(exc, 'strerror', None) or exc}"))
                return None
        return {k: resolve_references(v, _join(path, k), file, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, _join(path, str(i)), file, problems)
                for i, v in enumerate(value)]
    return value


#: a secret file bigger than this is not a secret (/dev/zero, a log): refused, not read
SECRET_FILE_MAX_BYTES = 64 * 1024


def _read_secret_file(name: Any) -> str:
    """A secret file's text: a regular file of at most :data:`SECRET_FILE_MAX_BYTES`, so a
    reference to a device or a FIFO neither hangs nor fills the process's memory."""
    if not isinstance(name, str) or not name:
        raise ValueError("the reference names no file")
    path = Path(name)
    with path.open("rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = handle.read(SECRET_FILE_MAX_BYTES + 1)
    if len(data) > SECRET_FILE_MAX_BYTES:
        raise ValueError(f"larger than {SECRET_FILE_MAX_BYTES} bytes")
    return data.decode("utf-8", errors="replace").strip()


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def flatten_errors(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """Turn marshmallow's nested error dict into ``(dotted.path, message)`` pairs."""
    if isinstance(messages, dict):
        out = []
        for key, sub in messages.items():
            sub_path = path if key == "_schema" else _join(path, key)
            out.extend(flatten_errors(sub, sub_path))
        return out
    if isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            return [(path, m) for m in messages]
        out = []
        for m in messages:
            out.extend(flatten_errors(m, path))
        return out
    return [(path, str(messages))]


@functools.lru_cache(maxsize=32)
def _parse_yaml(text: str):
    """The YAML document ``text``, parsed once per process: the test suite builds an app per
    test from the same files. Callers get it through :func:`_read_yaml`, as a copy."""
    return yaml.load(text, Loader=SAFE_YAML_LOADER)  # noqa: S506 (a safe loader)


def _read_yaml(path: Path, problems: list) -> dict:
    if not path.exists():
        return {}
    try:
        data = copy.deepcopy(_parse_yaml(path.read_text())) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problems.append((str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return {}
    if not isinstance(data, dict):
        problems.append((str(path), "", "must be a mapping of keys to values"))
        return {}
    return data


def _merge_overrides(data: dict, overrides: dict) -> None:
    """Lay ``create_app``'s section overrides over a file's sections, one level deep."""
    for key, value in copy.deepcopy(overrides).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            value = {**data[key], **value}
        data[key] = value


def load_settings(config_dir: Path | str | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Read, resolve and validate the core configuration.

    Precedence, lowest first: ``gateway.yaml``, the ``GATEWAY_*`` environment variables,
    ``overrides`` (what a test or ``create_app(config=...)`` passes).

    :raises ConfigError: naming each file, key path and reason
    """
    config_dir = Path(config_dir) if config_dir else default_config_dir()
    problems: list[tuple[str, str, str]] = []
    if not config_dir.is_dir():
        raise ConfigError([(str(config_dir), "", "configuration directory does not exist")])
    raw = {name: _read_yaml(config_dir / name, problems) for name in CONFIG_FILES}
    for name in SECTION_FILES:
        _merge_overrides(raw[f"{name}.yaml"], (overrides or {}).get(name) or {})
    resolved = {name: resolve_references(data, "", str(config_dir / name), problems)
                for name, data in raw.items()}
    core_raw = dict(resolved["gateway.yaml"])
    for env_name, key in ENV_OVERRIDES.items():
        if os.environ.get(env_name):
            core_raw[key] = os.environ[env_name]
    for key, value in (overrides or {}).items():
        if key not in SECTION_FILES:
            core_raw[key] = value
    gateway_file = str(config_dir / "gateway.yaml")
    try:
        core = CoreConfigSchema().load(core_raw)
    except ValidationError as exc:
        problems.extend((gateway_file, p, m) for p, m in flatten_errors(exc.messages))
        core = CoreConfigSchema().load({})
    sections = {}
    for name in SECTION_FILES:
        data = resolved[f"{name}.yaml"]
        for key, value in data.items():
            if not isinstance(value, dict):
                problems.append((str(config_dir / f"{name}.yaml"), key, "must be a mapping"))
        sections[name] = {k: v for k, v in data.items() if isinstance(v, dict)}
        sections[f"raw_{name}"] = {k: v for k, v in raw[f"{name}.yaml"].items()
                                   if isinstance(data.get(k), dict)}
    settings = Settings(config_dir=config_dir, core=core, **sections)
    if problems:
        raise ConfigError(problems, settings)
    return settings


def validate_section(file: str, key: str, schema: Schema, data: dict,
                     problems: list) -> dict | None:
    """Load ``data`` with ``schema``; record each error with its full key path."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        problems.extend((file, _join(key, p), m) for p, m in flatten_errors(exc.messages))
        return None


@dataclass
class OwnedConfig:
    """Every service's and courier's validated settings: what start-up and a reload install.

    ``service_settings`` is the core's part of each service (``enabled``, ``couriers``, ...),
    ``service_configs`` the plugin's own part; ``courier_configs`` is each courier instance's
    whole validated entry (core part, adapter's part, and the ``adapter`` type).
    """

    service_settings: dict[str, dict] = field(default_factory=dict)
    service_configs: dict[str, dict] = field(default_factory=dict)
    courier_configs: dict[str, dict] = field(default_factory=dict)


def check_service(service, section: dict, file: str, key: str,
                  problems: list) -> tuple[dict, dict] | None:
    """Validate one resolved ``services.yaml`` entry: the core's part, then the plugin's.

    :return: ``(core settings, plugin settings)``, or None when ``problems`` got entries
    """
    core_schema = ServiceSettingsSchema()
    core = validate_section(file, key, core_schema, section, problems)
    own: dict | None = {}
    if service.config_schema is not None:
        own_raw = {k: v for k, v in section.items() if k not in core_schema.fields}
        own = validate_section(file, key, service.config_schema(), own_raw, problems)
    if core is None or own is None:
        return None
    return core, own


def courier_adapter(courier_classes: dict, instance: str, section: dict):
    """The adapter class an entry names (``adapter``, default: the entry's name), or None."""
    name = section.get("adapter") if isinstance(section.get("adapter"), str) else None
    return courier_classes.get(name or instance)


def check_courier(courier_classes: dict, instance: str, section: dict, file: str, key: str,
                  problems: list, courier_hosts: list[str] = ()) -> dict | None:
    """Validate one resolved ``couriers.yaml`` entry over its adapter's ``default_config``.

    Every URL field of the adapter's schema (``base_url``, ``token_url``: any
    ``fields.Url``) must point at an origin of ``courier_hosts`` (the deploy's list in
    ``gateway.yaml``), or, for a sandbox entry, at this machine.

    :return: the instance's whole settings, or None when ``problems`` got entries or the
        entry names no installed adapter (logged: such entries are ignored, as at start-up)
    """
    section = {**getattr(courier_adapter(courier_classes, instance, section),
                         "default_config", {}), **section}
    core_schema = CourierSettingsSchema()
    core = validate_section(file, key, core_schema, section, problems)
    if core is None:
        return None
    cls = courier_classes.get(core["adapter"] or instance)
    if cls is None:
        log.warning("%s: %s: no installed courier adapter named %r; ignored",
                    file, instance, core["adapter"] or instance)
        return None
    own_raw = {k: v for k, v in section.items() if k not in core_schema.fields}
    own = validate_section(file, key, cls.config_schema(), own_raw, problems) \
        if cls.config_schema else own_raw
    if own is None:
        return None
    refused = [(file, _join(key, name), reason)
               for name, reason in url_refusals(cls.config_schema, own, core["sandbox"],
                                                courier_hosts)]
    problems.extend(refused)
    return None if refused else {**own, **core, "adapter": cls.name}


def url_refusals(schema: type[Schema] | None, config: dict, sandbox: bool,
                 courier_hosts: list[str], *, own_urls=frozenset(),
                 list_name: str = "courier_hosts") -> list[tuple[str, str]]:
    """``(key, reason)`` for each URL of a provider's settings it may not call (``own_urls``:
    fields that name our own address, given to the provider, never called)."""
    if schema is None:
        return []
    out = []
    for name, url_field in schema().fields.items():
        key = url_field.data_key or name
        if name in own_urls:
            continue
        if isinstance(url_field, fields.Url) and isinstance(config.get(name), str):
            reason = origins.refusal(config[name], courier_hosts, sandbox=sandbox,
                                     list_name=list_name)
            if reason:
                out.append((key, reason))
    return out


def courier_entries(courier_classes: dict, sections: dict[str, dict]) -> dict[str, dict]:
    """The courier entries of the files, plus an empty one for each adapter that runs even
    without an entry (``default_instance``: the own fleet)."""
    entries = dict(sections)
    for name, cls in courier_classes.items():
        if cls.default_instance and name not in entries:
            entries[name] = {}
    return entries


def build_owned_config(services: dict, courier_classes: dict, service_sections: dict,
                       courier_sections: dict, files: tuple[str, str],
                       courier_hosts: list[str] = ()
                       ) -> tuple[OwnedConfig, list[tuple[str, str, str]]]:
    """Validate every service's and courier's resolved section with its owner's schema.

    The one way settings are built from sections: at start-up from the files, and when a
    console change is picked up (``Gateway.refresh_config``). It never raises for bad
    settings; the caller decides what problems mean (start-up refuses, a reload keeps the
    settings it has).

    :param files: the names to report problems under: ``(services file, couriers file)``
    :param courier_hosts: the origins couriers may call (``gateway.yaml``'s list)
    :return: the settings, and ``(file, key path, reason)`` for each problem
    """
    problems: list[tuple[str, str, str]] = []
    owned = OwnedConfig()
    for name, service in services.items():
        checked = check_service(service, service_sections.get(name, {}), files[0], name,
                                problems)
        owned.service_settings[name], owned.service_configs[name] = checked or ({}, {})
    for instance, section in courier_entries(courier_classes, courier_sections).items():
        config = check_courier(courier_classes, instance, section, files[1], instance, problems,
                               courier_hosts)
        if config is not None:
            owned.courier_configs[instance] = config
    return owned, problems


class NotifierSettingsSchema(ProviderSettingsSchema):
    """The part of each ``notifiers.yaml`` entry that the core reads; the rest is the
    notifier's."""

    cost = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0), metadata={
        "description": "What one message costs, in whole units of the region's currency."})


def build_notifier_configs(notifier_classes: dict, sections: dict[str, dict], file: str,
                           notifier_hosts: list[str] = ()
                           ) -> tuple[dict[str, dict], list[tuple[str, str, str]]]:
    """Validate every ``notifiers.yaml`` entry: the core's part, then the notifier's own,
    then its URLs against ``notifier_hosts`` (the couriers' rule, :func:`url_refusals`).

    :return: each instance's whole settings, and ``(file, key path, reason)`` per problem
    """
    problems: list[tuple[str, str, str]] = []
    configs: dict[str, dict] = {}
    for instance, section in sections.items():
        core_schema = NotifierSettingsSchema()
        core = validate_section(file, instance, core_schema, section, problems)
        if core is None:
            continue
        cls = notifier_classes.get(core["adapter"] or instance)
        if cls is None:
            log.warning("%s: %s: no installed notifier named %r; ignored",
                        file, instance, core["adapter"] or instance)
            continue
        own_raw = {k: v for k, v in section.items() if k not in core_schema.fields}
        own = validate_section(file, instance, cls.config_schema(), own_raw, problems) \
            if cls.config_schema else own_raw
        if own is None:
            continue
        refused = [(file, _join(instance, name), reason) for name, reason in url_refusals(
            cls.config_schema, own, core["sandbox"], notifier_hosts,
            own_urls=getattr(cls, "own_urls", frozenset()), list_name="notifier_hosts")]
        problems.extend(refused)
        if not refused:
            configs[instance] = {**own, **core, "adapter": cls.name}
    return configs, problems
