"""Where a courier may send its credentials: URLs compared by their parsed origin.

A courier's ``base_url`` (and any other URL in its settings) is compared with the deploy's
list of allowed origins (``courier_hosts`` in ``gateway.yaml``) as *scheme, host, port*, never
as text: ``https://kilat-api.gojekapi.com@evil.example`` has the host ``evil.example``,
``https://kilat-api.gojekapi.com.evil.example`` is another host, ``http://`` and another port
are other origins. Anything two URL parsers could read differently (userinfo, backslashes,
spaces, percent signs in the host, dot segments, a query or a fragment in a base URL) is
refused outright, so what is checked here is what the HTTP library connects to. The sandbox
check (a simulator on this machine) uses the same parsing. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = {"http": 80, "https": 443}
#: hosts of simulators on this machine, as the parser gives them (IPv6 without brackets)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_UNSAFE = re.compile(r"[\s\\\x00-\x1f\x7f]")


class UnsafeUrl(ValueError):
    """A URL that is not a plain ``scheme://host[:port][/path]``; the message says why."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _host(raw: str) -> str:
    if not raw or raw.endswith(".") or "%" in raw:
        raise UnsafeUrl("its host is empty or not a plain host name")
    try:
        # IDNA: a look-alike in Unicode becomes its own xn-- name, never the one it mimics
        return raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeUrl("its host is not a valid host name") from None


def parse(url: str) -> tuple[Origin, str]:
    """The origin and path of a base URL.

    :raises UnsafeUrl: not http(s), userinfo, a query or fragment, dot segments, characters
        parsers disagree on
    """
    if not isinstance(url, str) or _UNSAFE.search(url):
        raise UnsafeUrl("it holds spaces, backslashes or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeUrl("only http:// and https:// are allowed")
    if "@" in parts.netloc:
        raise UnsafeUrl("a user name or password in the URL is not allowed")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise UnsafeUrl("a query or fragment is not allowed")
    segments = unquote(parts.path).split("/")
    if any(segment in (".", "..") for segment in segments):
        raise UnsafeUrl("'.' and '..' path segments are not allowed")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUrl("its port is not a number from 0 to 65535") from None
    host = _host(parts.hostname or "")
    return Origin(scheme, host, port if port is not None else SCHEMES[scheme]), parts.path


def parse_origin(text: str) -> Origin:
    """An allowed origin as the deploy writes it: ``scheme://host[:port]`` (a final ``/`` is
    tolerated, any other path is refused so nobody believes a path is enforced).

    :raises UnsafeUrl: see :func:`parse`
    """
    origin, path = parse(text)
    if path not in ("", "/"):
        raise UnsafeUrl("list an origin (scheme://host[:port]) without a path")
    return origin


def is_loopback(origin: Origin) -> bool:
    return origin.host in LOOPBACK_HOSTS


def refusal(url: str, allowed: Iterable[Origin | str], *, sandbox: bool,
            list_name: str = "courier_hosts") -> str | None:
    """Why a courier may not call ``url``, or None.

    A sandbox entry may call a simulator on this machine (any port); every entry may call the
    origins in ``allowed``.
    """
    try:
        origin, _path = parse(url)
    except UnsafeUrl as exc:
        return f"Not an allowed courier URL: {exc}."
    if sandbox and is_loopback(origin):
        return None
    if origin in {o if isinstance(o, Origin) else parse_origin(o) for o in allowed}:
        return None
    return (f"{origin} is not in {list_name} of gateway.yaml (the deploy's list of "
            "provider hosts)" + ("; a sandbox entry may also use 127.0.0.1, localhost or ::1"
                                 if sandbox else "") + ".")


def sandbox_refusal(url: str, provider_sandboxes: Iterable[str] = ()) -> str | None:
    """Why a sandbox entry may not call ``url``, or None: it may call a simulator on this
    machine, or one of its provider's own sandboxes (``scheme://host[:port][/path]``: the
    URL's origin must be the same and its path must be that path or below it)."""
    try:
        origin, path = parse(url)
    except UnsafeUrl as exc:
        return str(exc)
    if is_loopback(origin):
        return None
    for sandbox in provider_sandboxes:
        allowed, prefix = parse(sandbox)
        prefix = prefix.rstrip("/")
        if origin == allowed and (path.rstrip("/") == prefix or path.startswith(f"{prefix}/")):
            return None
    return "it is neither a simulator on this machine nor the provider's sandbox"
