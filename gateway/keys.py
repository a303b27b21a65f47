"""Agency API keys: random, shown once, stored only as a hash.

A key reads ``gw_<type>_<prefix>_<secret>``: ``type`` is ``live`` or ``test``, the 10-character
``prefix`` finds the stored row (and names the key in logs, the console and
``gateway keys revoke``), and the 40-character secret gives about 238 bits of randomness. The
database keeps ``gw_<type>_<prefix>`` and the SHA-256 of the whole key; with keys this random,
a plain hash is as strong as a slow password hash and costs microseconds per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

KEY_TYPES = ("live", "test")
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(r"^(gw_(live|test)_[A-Za-z0-9]{10})_[A-Za-z0-9]{40}$")


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def generate_key(key_type: str) -> str:
    if key_type not in KEY_TYPES:
        raise ValueError(f"key type must be one of {KEY_TYPES}")
    return f"gw_{key_type}_{_random(10)}_{_random(40)}"


def parse_key(key: str) -> tuple[str, str] | None:
    """Return ``(prefix, key_type)`` of a well-formed key, or None."""
    match = KEY_PATTERN.match(key or "")
    return (match.group(1), match.group(2)) if match else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
