"""Encryption of personal data at rest (UU PDP): request payloads and agency callback secrets.

Fernet (AES-128-CBC with HMAC-SHA256) from ``cryptography``. The key comes from the core
config's ``secret_key`` (normally ``{"$env": "GATEWAY_SECRET_KEY"}``); on the embedded
default, when none is configured, one is generated once into the data directory with mode
0600. Several keys may be given, comma-separated, newest first, so keys can be rotated:
data is written with the first and read with any.

The same key material also keys :class:`IdentifierDigests`, through HKDF with a label of its
own (so the digest key is never the encryption key): lists of personal identifiers that a
deployment keeps in its settings (an eligibility allow-list of NIKs) hold keyed digests, which
cannot be reversed by hashing every possible identifier without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE_NAME = "secret.key"
IDENTIFIER_DIGEST_LABEL = b"gateway identifier digests v1"


class UnreadableSecret(Exception):
    """Ciphertext that none of the configured keys can open (wrong key, or tampered)."""


def load_or_create_key(secret_key: str | None, data_dir: str | Path) -> str:
    if secret_key:
        return secret_key
    path = Path(data_dir) / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.encode())
    finally:
        os.close(fd)
    return key


#: attribute of an object (a request made by this process) holding the JSON text of what
#: was sealed for it, by ciphertext
KEPT = "_vault_kept"


def kept_on(holder: object, kept: dict | None = None) -> dict:
    """The texts sealed for ``holder`` in this process (``kept`` joins them), for
    :meth:`Vault.seal` and :meth:`Vault.open`. A create seals the payload, the PIN and the
    tracking token and then reads them back (the accepted notice, the answer): kept on the
    new request, they cost no decryption, and they live only as long as that object (the
    request being served)."""
    mine = holder.__dict__.setdefault(KEPT, {})
    if kept:
        mine.update(kept)
    return mine


class Vault:
    """Seals and opens small JSON documents (and bytes: proof-of-delivery images)."""

    def __init__(self, keys: str):
        self._fernet = MultiFernet([Fernet(k.encode()) for k in split_keys(keys)])

    def seal(self, document: Any, kept: dict | None = None) -> bytes:
        """:param kept: also keep the sealed JSON text here, by its ciphertext (see
            :func:`kept_on`), so that the request that sealed it reads it back without
            decrypting"""
        text = json.dumps(document, separators=(",", ":"))
        sealed = self._encrypt(text)
        if kept is not None:
            kept[sealed] = text
        return sealed

    def open(self, token: bytes, on: object = None) -> Any:
        """:param on: the object ``token`` belongs to: what this process sealed on it
            (:func:`kept_on`) is read from there, the same document without a decryption"""
        if on is not None:
            text = getattr(on, "__dict__", {}).get(KEPT, {}).get(token)
            if text is not None:
                return json.loads(text)
        try:
            return json.loads(self._decrypt(token))
        except InvalidToken as exc:
            raise UnreadableSecret("ciphertext cannot be opened with the configured keys") \
                from exc

    def _encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode())

    def _decrypt(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)

    def seal_bytes(self, data: bytes) -> bytes:
        """Seal raw bytes with the same keys as documents (an image, kept as it came)."""
        return self._fernet.encrypt(data)

    def open_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise UnreadableSecret("ciphertext cannot be opened with the configured keys") \
                from exc


def split_keys(keys: str) -> list[str]:
    return [k.strip() for k in keys.split(",") if k.strip()]


def derive_key(key: str, label: bytes) -> bytes:
    """A 32-byte key for one purpose (``label``), derived from a data key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        base64.urlsafe_b64decode(key.encode()))


class IdentifierDigests:
    """Keyed digests (HMAC-SHA256) of personal identifiers, for lists kept in settings.

    A bare SHA-256 of a 16-digit NIK is reversed in minutes: the region prefix and birth date
    leave a few hundred million candidates. Keyed by the deployment's key material, a digest
    can only be matched by someone who holds the key, and a list made for one deployment
    matches nothing in another. Digests are written with the newest key; with several keys
    configured (rotation), a value matches an entry made with any of them.
    """

    def __init__(self, keys: str):
        self._keys = [derive_key(k, IDENTIFIER_DIGEST_LABEL) for k in split_keys(keys)]

    def digest(self, value: str) -> str:
        """The hex digest to list for ``value`` (with the newest key)."""
        return self._digests(value)[0]

    def matches(self, value: str, entries: Iterable[str]) -> bool:
        """Whether ``value`` is listed in ``entries``, comparing in constant time."""
        candidates = self._digests(value)
        found = False
        for entry in entries:
            for candidate in candidates:
                found |= hmac.compare_digest(candidate, entry.strip().lower())
        return found

    def digests(self, value: str) -> list[str]:
        """``value``'s digest under every configured key, newest first (to look it up)."""
        return self._digests(value)

    def _digests(self, value: str) -> list[str]:
        return [hmac.new(key, value.encode(), hashlib.sha256).hexdigest() for key in self._keys]
