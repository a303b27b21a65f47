"""A SATUSEHAT simulator for tests and the quick start: its published endpoints, on this machine.

Follows SATUSEHAT's documentation, not our sender (``shared/reference/government-and-health.md``
§2.3; SATUSEHAT platform docs "Autentikasi" and the FHIR API catalogue):

* ``POST /oauth2/v1/accesstoken?grant_type=client_credentials`` with form fields
  ``client_id`` and ``client_secret``: 200 with ``access_token``, ``expires_in`` (a string of
  seconds, ``"3599"`` by default), ``issued_at`` (epoch milliseconds, a string),
  ``token_type: "BearerToken"``, ``client_id`` and ``status: "approved"``; wrong credentials
  or grant type: 401 with an OperationOutcome.
* ``POST /fhir-r4/v1`` with a Bundle (``transaction``), or ``POST /fhir-r4/v1/<Resource>``
  with one resource: ``Authorization: Bearer <token>`` must be a token it issued and that has
  not expired (else 401, OperationOutcome ``security`` [U: the code]); errors are
  OperationOutcomes (``invalid`` for a malformed body; ``business-rule`` when an identifier
  system names another organization than the client's: "one client id per organization");
  a Bundle answers 200 with a ``transaction-response`` Bundle, a resource 201 with itself.
  5xx answers are ``text/plain`` as documented ("Gateway Timeout").

Test controls (plain attributes, no HTTP): ``fail_next(n, status)`` makes the next ``n``
FHIR calls fail with ``status``; ``token_lifetime`` sets ``expires_in``; ``received`` lists
every FHIR body it accepted or refused, with the token it came with; ``tokens_issued``
counts the tokens.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

from flask import Flask, jsonify, request

KEMKES_IDS = "http://sys-ids.kemkes.go.id/"


def outcome(code: str, text: str, status: int):
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "details": {"text": text}}]}
    return jsonify(body), status


class SatusehatSimulator:
    def __init__(self, client_id: str, client_secret: str, organization_id: str,
                 token_lifetime: float = 3599):
        self.client_id, self.client_secret = client_id, client_secret
        self.organization_id = organization_id
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.received: list[dict] = []
        self.failures: list[int] = []
        self.url = ""
        self._lock = threading.Lock()

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self.failures.extend([status] * count)

    def accepted(self) -> list[dict]:
        return [r["body"] for r in self.received if r["status"] in (200, 201)]

    # -- the checks SATUSEHAT makes ----------------------------------------------------------
    def _bearer_refusal(self):
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        expires = self.tokens.get(token)
        if expires is None:
            return outcome("security", "Access token is invalid.", 401)
        if time.time() >= expires:
            return outcome("security", "Access token expired.", 401)
        return None

    def _other_organization(self, resource: dict) -> bool:
        for identifier in resource.get("identifier") or []:
            system = identifier.get("system") or ""
            if system.startswith(KEMKES_IDS) and system.rsplit("/", 1)[-1] \
                    != self.organization_id:
                return True
        return False

    def create_app(self) -> Flask:
        app = Flask(__name__)

        @app.post("/oauth2/v1/accesstoken")
        def accesstoken():
            if request.args.get("grant_type") != "client_credentials" \
                    or request.form.get("client_id") != self.client_id \
                    or request.form.get("client_secret") != self.client_secret:
                return outcome("value", "The user or system was not able to be authenticated "
                               "(either client_id or client_secret combination is "
                               "unacceptable)", 401)
            token = secrets.token_urlsafe(24)
            with self._lock:
                self.tokens[token] = time.time() + self.token_lifetime
                self.tokens_issued += 1
            return jsonify({"access_token": token, "expires_in": str(int(self.token_lifetime)),
                            "issued_at": str(int(time.time() * 1000)),
                            "token_type": "BearerToken", "client_id": self.client_id,
                            "status": "approved"})

        @app.post("/fhir-r4/v1", defaults={"resource_type": None})
        @app.post("/fhir-r4/v1/<resource_type>")
        def fhir(resource_type):
            body = request.get_json(silent=True)
            response = app.make_response(self._answer(body, resource_type))
            with self._lock:
                self.received.append({"body": body, "status": response.status_code,
                                      "authorization": request.headers.get("Authorization")})
            return response

        return app

    def _answer(self, body, resource_type):
        refusal = self._bearer_refusal()
        if refusal:
            return refusal
        with self._lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure:
            return "Gateway Timeout" if failure == 504 else "Service Unavailable", failure, \
                {"Content-Type": "text/plain"}
        if not isinstance(body, dict) or "resourceType" not in body:
            return outcome("invalid", "The body is not a FHIR resource.", 400)
        if resource_type is None:
            return self._bundle(body)
        if body["resourceType"] != resource_type:
            return outcome("invalid", "resourceType does not match the URL.", 400)
        if self._other_organization(body):
            return outcome("business-rule", "resource cannot be accessed due to business "
                           "rule", 403)
        return jsonify({**body, "id": str(uuid.uuid4())}), 201

    def _bundle(self, body: dict):
        if body["resourceType"] != "Bundle" or body.get("type") != "transaction":
            return outcome("invalid", "Expected a transaction Bundle.", 400)
        responses = []
        for entry in body.get("entry") or []:
            resource = entry.get("resource") or {}
            method = (entry.get("request") or {}).get("method")
            if method != "POST" or not str(entry.get("fullUrl", "")).startswith("urn:uuid:"):
                return outcome("invalid", "Each entry needs a urn:uuid fullUrl and a POST.", 400)
            if self._other_organization(resource):
                return outcome("business-rule", "resource cannot be accessed due to business "
                               "rule", 403)
            if resource.get("resourceType") == "MedicationDispense" and not str(
                    (resource.get("subject") or {}).get("reference", "")).startswith("Patient/"):
                return outcome("invalid", "MedicationDispense.subject must reference a "
                               "Patient.", 400)
            responses.append({"response": {
                "status": "201 Created",
                "location": f"{resource.get('resourceType')}/{uuid.uuid4()}/_history/1",
                "resourceType": resource.get("resourceType")}})
        return jsonify({"resourceType": "Bundle", "type": "transaction-response",
                        "entry": responses}), 200
