"""Sending the record of a delivered prescription to SATUSEHAT (optional, off by default).

SATUSEHAT is the health ministry's FHIR R4 platform. When ``satusehat.enabled`` is set in the
service's settings, each delivered medicine request owes its record (``fhir.py``'s Bundle) to
SATUSEHAT: the owed work is marked in the same transaction as the delivered status
(``pending_job = "satusehat"``, from the ``track_event`` hook), and a job posts the Bundle,
retried with growing delays while SATUSEHAT is unavailable, each outcome on the request's
timeline (sent; refused, with the OperationOutcome's issue codes; unavailable, retried).

SATUSEHAT's published API (``shared/reference/government-and-health.md`` §2.3; SATUSEHAT
platform docs, "Autentikasi" and the FHIR API catalogue), followed here and by the simulator
(``satusehat_simulator.py``):

* OAuth2 client credentials: ``POST {auth_url}/accesstoken?grant_type=client_credentials``
  with ``client_id`` and ``client_secret`` form fields (``auth_url`` is
  ``https://api-satusehat[-stg.dto].kemkes.go.id/oauth2/v1``); the answer's ``access_token``
  is sent as ``Authorization: Bearer`` until ``expires_in`` (``"3599"`` seconds) is over.
  The token is kept in memory only, per gateway, and fetched again shortly before it expires
  (and once when SATUSEHAT answers 401 to it).
* ``POST {base_url}`` (``.../fhir-r4/v1``) with a ``transaction`` Bundle; errors answer a FHIR
  ``OperationOutcome`` (``issue[].code``: ``invalid``, ``business-rule``, ...). One client id
  belongs to one organization.

What it must never do: send a request made with a test key anywhere but a sandbox (a
simulator on this machine or SATUSEHAT's staging), call a host that is not in the deploy's
``courier_hosts`` (or, for a sandbox, this machine), log or put on the timeline anything
personal (the OperationOutcome's free text may quote the record; only its codes are kept),
or show the credentials (``Secret`` fields: write-only in the console).
"""

from __future__ import annotations

import re
import threading
import time

import requests
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from rq import get_current_job

from gateway import origins
from gateway.fields import Secret
from gateway.models import ServiceRequest, utcnow
from gateway.queues import enqueue_after_commit
from gateway.records import transition, view_request
from gateway.statuses import Status
from gateway.urlguard import GuardedSession, UnsafeURL, policy_from_settings

from .fhir import dispense_bundle

#: the job kind, as ``pending_job`` names the owed work
JOB = "satusehat"
SOURCE = "satusehat"
#: where a sandbox entry may send (besides a simulator on this machine): SATUSEHAT's staging
#: and development environments (reference §2.3; the dev host from a community SDK, [S])
SANDBOXES = ("https://api-satusehat-stg.dto.kemkes.go.id",
             "https://api-satusehat-dev.dto.kemkes.go.id")
#: an OperationOutcome issue code as FHIR defines them (``business-rule``); anything else
#: from the answer is not repeated on the timeline
ISSUE_CODE = re.compile(r"[a-z][a-z0-9-]{0,39}")
#: how long before a token's expiry it is fetched again: a tenth of its life, at most a minute
EARLY_FRACTION, EARLY_MAX = 0.1, 60.0


class SatusehatSettingsSchema(Schema):
    """``satusehat`` in the medicine service's settings."""

    class Meta:
        unknown = "raise"

    enabled = fields.Boolean(load_default=False, metadata={
        "description": "Send each delivered request's FHIR Bundle to SATUSEHAT."})
    sandbox = fields.Boolean(load_default=True, metadata={
        "description": "A sandbox (SATUSEHAT's staging or a simulator on this machine): "
                       "requests made with test keys are sent only to a sandbox."})
    auth_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"},
                          metadata={"description": "The OAuth2 base, e.g. https://api-satusehat-"
                                                   "stg.dto.kemkes.go.id/oauth2/v1."})
    base_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"},
                          metadata={"description": "The FHIR base, e.g. https://api-satusehat-"
                                                   "stg.dto.kemkes.go.id/fhir-r4/v1."})
    client_id = Secret(load_default=None, metadata={
        "description": "The organization's SATUSEHAT client id."})
    client_secret = Secret(load_default=None, metadata={
        "description": "The organization's SATUSEHAT client secret."})
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=60))
    retry_intervals = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=0, max=86400)),
        load_default=lambda: [30, 120, 600, 1800, 3600, 3 * 3600],
        validate=validate.Length(max=20), metadata={
            "description": "Seconds before each retry while SATUSEHAT is unavailable."})

    @validates_schema
    def _complete_when_enabled(self, data, **kwargs):
        if data.get("enabled"):
            missing = {name: ["Required when enabled."] for name in
                       ("auth_url", "base_url", "client_id", "client_secret")
                       if not data.get(name)}
            if missing:
                raise ValidationError(missing)
        if data.get("sandbox", True):
            # Test keys are sent to a sandbox: it must not be the real SATUSEHAT.
            problems = {name: [f"A sandbox may call only a simulator on this machine or "
                               f"SATUSEHAT's staging: {reason}."]
                        for name in ("auth_url", "base_url") if data.get(name)
                        for reason in [origins.sandbox_refusal(data[name], SANDBOXES)]
                        if reason}
            if problems:
                raise ValidationError(problems)


def settings_of(gateway, service_name: str) -> dict:
    return (gateway.service_configs.get(service_name) or {}).get("satusehat") or {}


def retry_intervals(gateway, service_name: str) -> list[int]:
    return settings_of(gateway, service_name).get("retry_intervals") or []


# -- owing the record -------------------------------------------------------------------------
def owe_record(gateway, service_name: str, event, session) -> None:
    """On a request of this service becoming delivered, mark its record as owed to
    SATUSEHAT and queue the job once the transaction commits (persist, then enqueue)."""
    if event.action != "request.status" or event.outcome != "applied" \
            or event.details.get("to") != str(Status.DELIVERED) \
            or not (event.target or "").startswith("request:"):
        return
    if not settings_of(gateway, service_name).get("enabled"):
        return
    record = session.get(ServiceRequest, event.target.split(":", 1)[1])
    if record is None or record.service != service_name:
        return
    record.pending_job, record.pending_since = JOB, utcnow()
    enqueue_after_commit(gateway, session, JOB, record.id)


# -- the client -------------------------------------------------------------------------------
class SatusehatRefused(Exception):  # noqa: N818 - named like SATUSEHAT's answer
    """SATUSEHAT (or our own checks) refused: sending again will not help. ``codes`` are the
    OperationOutcome's issue codes (never its text), or ``http_<status>``."""

    def __init__(self, codes: list[str], where: str):
        super().__init__(f"{where}: {', '.join(codes)}")
        self.codes, self.where = codes, where


class SatusehatUnavailable(Exception):
    """A network failure, a 429 or a 5xx: worth another try later."""


def issue_codes(response: requests.Response) -> list[str]:
    """The OperationOutcome's issue codes (``invalid``, ``business-rule``), or ``http_<n>``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    codes = []
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue") or []:
            code = issue.get("code") if isinstance(issue, dict) else None
            if isinstance(code, str) and ISSUE_CODE.fullmatch(code):
                codes.append(code)
    return codes or [f"http_{response.status_code}"]


class SatusehatClient:
    """The HTTP side: a token cache and a guarded session, one per gateway (kept by the
    service), shared by the jobs of a worker's threads."""

    def __init__(self):
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._session: GuardedSession | None = None

    def session(self, gateway) -> GuardedSession:
        if self._session is None:
            self._session = GuardedSession(policy_from_settings(gateway.settings))
        return self._session

    def _call(self, gateway, method: str, url: str, **kwargs) -> requests.Response:
        try:
            return self.session(gateway).request(method, url, allow_redirects=False, **kwargs)
        except UnsafeURL as exc:
            raise SatusehatRefused(["unsafe_url"], "gateway") from exc
        except requests.RequestException as exc:
            raise SatusehatUnavailable(type(exc).__name__) from None

    def token(self, gateway, config: dict, *, fresh: bool = False) -> str:
        key = (config["auth_url"], config["client_id"])
        with self._lock:
            cached = self._tokens.get(key)
            if cached and not fresh and time.monotonic() < cached[1]:
                return cached[0]
        response = self._call(
            gateway, "POST", f"{config['auth_url'].rstrip('/')}/accesstoken",
            params={"grant_type": "client_credentials"},
            data={"client_id": config["client_id"], "client_secret": config["client_secret"]},
            timeout=config["timeout_seconds"])
        if response.status_code == 429 or response.status_code >= 500:
            raise SatusehatUnavailable(f"token: HTTP {response.status_code}")
        if response.status_code != 200:
            raise SatusehatRefused(issue_codes(response), "token")
        try:
            body = response.json()
            token, lifetime = str(body["access_token"]), float(body["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise SatusehatUnavailable("token: not a token answer") from None
        expires = time.monotonic() + lifetime - min(EARLY_MAX, lifetime * EARLY_FRACTION)
        with self._lock:
            self._tokens[key] = (token, expires)
        return token

    def post_bundle(self, gateway, config: dict, bundle: dict) -> dict:
        """POST the Bundle; a 401 to a cached token fetches a new one and tries once more.

        :raises SatusehatRefused: a 4xx other than 429 (or our URL checks)
        :raises SatusehatUnavailable: network failure, 429, 5xx
        """
        for fresh in (False, True):
            token = self.token(gateway, config, fresh=fresh)
            response = self._call(gateway, "POST", config["base_url"].rstrip("/"), json=bundle,
                                  headers={"Authorization": f"Bearer {token}",
                                           "Content-Type": "application/fhir+json"},
                                  timeout=config["timeout_seconds"])
            if response.status_code != 401:
                break
        if response.status_code in (200, 201):
            try:
                return response.json()
            except ValueError:
                return {}
        if response.status_code == 429 or response.status_code >= 500:
            raise SatusehatUnavailable(f"HTTP {response.status_code}")
        raise SatusehatRefused(issue_codes(response), "record")


# -- the job ----------------------------------------------------------------------------------
def _timeline(gateway, request_id: str, detail: str, *, done: bool) -> None:
    """Put ``detail`` on the request's timeline (its status unchanged); ``done`` clears the
    owed work."""
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.pending_job != JOB:
            return
        transition(gateway, session, record, Status(record.status), source=SOURCE,
                   detail=detail)
        if done:
            record.pending_job, record.pending_since = None, None


def missing_references(data: dict) -> list[str]:
    """What SATUSEHAT cannot take a dispense without: the organization (the identifier
    systems), the patient's IHS number and each drug's KFA code."""
    missing = []
    if not (data.get("satusehat") or {}).get("organization_id"):
        missing.append("satusehat.organization_id")
    if not data["patient"].get("ihs_number"):
        missing.append("patient.ihs_number")
    missing += [f"items.{i}.kfa_code" for i, item in enumerate(data["items"])
                if not item.get("kfa_code")]
    return missing


def url_refusal(gateway, config: dict) -> str | None:
    """Why the sender may not call its URLs (checked again when called: the settings may
    have come from the console): an origin not in ``courier_hosts`` (a sandbox may also call
    this machine), or a sandbox pointing at anything but this machine or SATUSEHAT's
    staging."""
    for name in ("auth_url", "base_url"):
        reason = origins.refusal(config[name], gateway.settings["courier_hosts"],
                                 sandbox=config["sandbox"])
        if not reason and config["sandbox"]:
            reason = origins.sandbox_refusal(config[name], SANDBOXES)
        if reason:
            return f"{name}: {reason}"
    return None


def send_record(gateway, service, request_id: str) -> str:
    """Post a delivered request's Bundle to SATUSEHAT, once; the outcome on its timeline.

    :raises SatusehatUnavailable: to be retried (rq's retries, ``retry_intervals``)
    """
    config = settings_of(gateway, service.name)
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, request_id)
        if record is None or record.pending_job != JOB:
            return "nothing to do"
        reason = None
        if not config.get("enabled"):
            reason = "the SATUSEHAT sender is off"
        elif not config["sandbox"] and not (record.key_type == "live"
                                            and gateway.settings["mode"] == "live"):
            # as with couriers: only a live key on a gateway in live mode reaches the real one
            reason = "a test request, or any in sandbox mode, goes only to a SATUSEHAT sandbox"
        elif record.payload_ciphertext is None:
            reason = "its personal data was purged"
        else:
            data = gateway.vault.open(record.payload_ciphertext)
            proof = gateway.vault.open(record.proof_ciphertext) \
                if record.proof_ciphertext else None
            request = view_request(session, record)
            missing = missing_references(data)
            reason = (f"it lacks {', '.join(missing)}" if missing else url_refusal(gateway, config))
    if reason:
        _timeline(gateway, request_id, f"not sent to SATUSEHAT: {reason}", done=True)
        return "not sent"
    bundle = dispense_bundle(request, data, proof)
    try:
        service.satusehat.post_bundle(gateway, config, bundle)
    except SatusehatRefused as exc:
        _timeline(gateway, request_id, "not sent to SATUSEHAT: its address is refused"
                  if exc.where == "gateway" else f"refused by SATUSEHAT ({exc})", done=True)
        return "refused"
    except SatusehatUnavailable as exc:
        job = get_current_job()
        retried = job is not None and bool(job.retries_left)
        _timeline(gateway, request_id, f"SATUSEHAT unavailable ({exc})"
                  + ("; will retry" if retried else ""), done=False)
        raise
    _timeline(gateway, request_id, f"sent to SATUSEHAT ({len(bundle['entry'])} resources)",
              done=True)
    return "sent"
