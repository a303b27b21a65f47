"""Links a citizen follows: the public tracking page ``/t/<token>`` and the satisfaction
survey ``/s/<token>`` (served by ``gateway.public``).

A request gets its token at intake: 192 random bits (``secrets.token_urlsafe``), never the
request's id nor anything derived from it, so a link cannot be guessed from another. Like an
API key, the token is found by its SHA-256 (``service_requests.tracking_digest``, unique);
unlike a key, the gateway must be able to give the link again (the request's detail in the
API, the notice sent after delivery), so the token itself is kept sealed with the data key
beside it. A copy of the database without the key yields no working link. The survey uses
the same token on its own route: one link per request to keep, one answer per request.

This module builds URLs from ``public.base_url`` and nothing else; it never logs a token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from .crypto import kept_on

#: 24 bytes: 192 bits of randomness, 32 URL-safe characters
TOKEN_BYTES = 24
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """What the database keeps to find a token (a 192-bit random token needs no salt)."""
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """A token this module could have made: anything else is answered 404 without a query."""
    return bool(TOKEN_PATTERN.fullmatch(token or ""))


def public_base_url(settings) -> str:
    """``public.base_url``, or this gateway's own ``http://host:port`` when it is not set
    (the embedded default on a laptop; a deploy sets the address citizens reach)."""
    configured = settings["public"]["base_url"]
    if configured:
        return configured
    host = settings["host"]
    # listening on every interface: the link names this machine as its own browser does
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(  # noqa: S104
        host, host)
    return f"http://{host}:{settings['port']}"


@dataclass(frozen=True)
class Links:
    """The gateway's link builder (``gateway.links``): ``public.base_url`` and the vault
    that opens a request's sealed token."""

    base_url: str
    vault: object

    def issue(self, record) -> str:
        """Give ``record`` a new token (its digest and sealed form); :return: the token"""
        token = new_token()
        record.tracking_digest = digest(token)
        record.tracking_token_ciphertext = self.vault.seal(token, kept_on(record))
        return token

    def token(self, record) -> str | None:
        sealed = getattr(record, "tracking_token_ciphertext", None)
        return self.vault.open(sealed, on=record) if sealed else None

    def tracking_url(self, record) -> str | None:
        """The request's public tracking page, or None (a request older than tokens)."""
        token = self.token(record)
        return f"{self.base_url}/t/{token}" if token else None

    def survey_url(self, record) -> str | None:
        """The request's satisfaction survey (answers only after delivery), or None."""
        token = self.token(record)
        return f"{self.base_url}/s/{token}" if token else None
