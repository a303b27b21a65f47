"""Encryption of personal data at rest (UU PDP): request payloads and agency callback secrets.

Fernet (AES-128-CBC with HMAC-SHA256) from ``cryptography``. The key comes from the core
config's ``secret_key`` (normally ``{"$env": "GATEWAY_SECRET_KEY"}``); on the embedded
default, when none is configured, one is generated once into the data directory with mode
0600. Several keys may be given, comma-separated, newest first, so keys can be rotated:
data is written with the first and read with any.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEY_FILE_NAME = "secret.key"


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


class Vault:
    """Seals and opens small JSON documents."""

    def __init__(self, keys: str):
        self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",")
                                    if k.strip()])

    def seal(self, document: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(document, separators=(",", ":")).encode())

    def open(self, token: bytes) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise UnreadableSecret("ciphertext cannot be opened with the configured keys") \
                from exc
