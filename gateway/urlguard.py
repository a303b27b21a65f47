"""Calling a URL someone else gave us, without letting it point back inside.

An agency chooses its callback URL; anything that makes the gateway call such a URL must not
become a way to reach this machine or its network (SSRF): loopback, private and link-local
addresses, the cloud metadata service. The checks here are made twice:

* on the URL's shape when it is set and again when it is called (:func:`check_url`): http or
  https only (https only where the policy says so, as in ``mode: live``), no user name or
  password (``requests`` would turn them into Basic auth), a host name;
* on the address actually connected to (:class:`GuardedSession`): the host is resolved when
  the connection is made, every address it resolves to is checked, and the socket connects
  to the checked address itself, so a name that answers a public address to a first lookup
  and ``127.0.0.1`` to the next (DNS rebinding) cannot slip between the check and the
  connect. TLS still verifies the certificate against the host name (SNI and ``Host`` are
  untouched): only the socket's address is pinned.

Redirects are not followed by callers (``allow_redirects=False``), and the session ignores
proxy and netrc settings from the environment. The policy comes from configuration
(``callbacks`` in ``gateway.yaml``): ``mode: live`` refuses every non-public address; sandbox
allows loopback, for the quick start's and the tests' local receivers. Link-local,
multicast, unspecified and reserved addresses, and the known metadata addresses, are refused
whatever the policy says.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: metadata services of the clouds a gateway may run on; most are link-local already
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"))
#: what loopback means when a sandbox allows it
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


class UnsafeURL(Exception):  # noqa: N818 - named like the refusal it is
    """The URL, or the address its host resolves to, is not one the gateway may call.

    Deliberately not an ``OSError``: urllib3 and requests let it through untouched, so a
    refusal can never be mistaken for (and retried like) a network error.
    """


@dataclass(frozen=True)
class URLPolicy:
    require_https: bool
    #: non-public networks the deployment chose to allow (loopback in sandbox mode)
    allowed_networks: tuple[IPNetwork, ...] = ()


def policy_from_settings(settings) -> URLPolicy:
    """The policy of ``callbacks`` settings: unset keys follow ``mode`` (live: https and
    public addresses only; sandbox: http allowed, and loopback)."""
    callbacks, live = settings["callbacks"], settings["mode"] == "live"
    require_https = callbacks.get("require_https")
    networks = callbacks.get("allowed_networks")
    if networks is None:
        networks = [] if live else list(LOOPBACK_NETWORKS)
    return URLPolicy(require_https=live if require_https is None else require_https,
                     allowed_networks=tuple(ipaddress.ip_network(n) for n in networks))


def check_url(url: str, policy: URLPolicy) -> None:
    """Refuse a URL by its shape, and by its host when that is an address.

    :raises UnsafeURL: with a reason an agency may read
    """
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("not a valid URL") from exc
    schemes = ("https",) if policy.require_https else ("https", "http")
    if parts.scheme not in schemes:
        raise UnsafeURL("the URL must start with https://" if policy.require_https
                        else "the URL must start with https:// or http://")
    if "@" in parts.netloc:
        raise UnsafeURL("the URL must not carry a user name or password")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host")
    if port == 0:
        raise UnsafeURL("the URL's port is not allowed")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    check_address(literal, policy)


def check_address(address: IPAddress, policy: URLPolicy) -> None:
    """Refuse an address that is not public, unless the policy allows its network.

    :raises UnsafeURL: the address is loopback, private, link-local, metadata, ...
    """
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and friends reach the IPv4 address inside them
        embedded = address.ipv4_mapped or address.sixtofour or \
            (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            check_address(embedded, policy)
        if address in ipaddress.ip_network("64:ff9b::/96"):    # NAT64
            check_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), policy)
    if address in METADATA_ADDRESSES or address.is_link_local or address.is_multicast \
            or address.is_unspecified:
        raise UnsafeURL("the address is not allowed")
    if any(address.version == network.version and address in network
           for network in policy.allowed_networks):
        return
    if address.is_global and not address.is_reserved:
        return
    raise UnsafeURL("the address is not allowed")


def resolve_checked(host: str, port: int, policy: URLPolicy) -> list[tuple]:
    """Resolve ``host`` once and check every address it has.

    One forbidden address refuses the host: a name that resolves both to a public and to a
    private address is not one to call.

    :return: ``getaddrinfo`` entries, each a checked address to connect to
    :raises UnsafeURL: an address is not allowed
    :raises socket.gaierror: the name does not resolve
    """
    entries = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_rest, sockaddr in entries:
        check_address(ipaddress.ip_address(sockaddr[0].split("%", 1)[0]), policy)
    return entries


class _GuardedConnectionMixin:
    """Make the socket by resolving, checking, then connecting to the checked address."""

    url_policy: URLPolicy

    def _new_conn(self) -> socket.socket:
        try:
            entries = resolve_checked(self._dns_host, self.port, self.url_policy)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError | None = None
        for _family, _type, _proto, _name, sockaddr in entries:
            try:
                return urllib3_connection.create_connection(
                    (sockaddr[0], self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out.") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


def _pool_classes(policy: URLPolicy) -> dict[str, type]:
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection),
                     {"url_policy": policy})
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection),
                      {"url_policy": policy})
    return {"http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": https_conn})}


class GuardedAdapter(HTTPAdapter):
    """A transport adapter whose connections check the address they connect to."""

    def __init__(self, policy: URLPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise UnsafeURL("calls to agency URLs never go through a proxy")


class GuardedSession(requests.Session):
    """A ``requests`` session for URLs an outsider chose: every connection checked, no
    proxies or netrc credentials from the environment. Callers pass ``allow_redirects=False``
    and read the status code only."""

    def __init__(self, policy: URLPolicy):
        super().__init__()
        self.trust_env = False
        self.mount("http://", GuardedAdapter(policy))
        self.mount("https://", GuardedAdapter(policy))

    def request(self, method, url, *args, **kwargs):
        check_url(url, self.adapters["https://"].policy)
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)
