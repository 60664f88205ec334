"""Which webhook URLs the origin will call (server-side request forgery protection).

The origin must not be turned into a proxy towards the networks it sits in: private, link-local,
loopback, multicast and reserved addresses are refused, except plain `localhost` / 127.x, which are
allowed (over http too) so that a receiver on the same machine works in development and tests.
Anything else must be https. Names that are not IP literals are accepted here (resolving them
would block); the webhook session resolves them through `resolver.PublicResolver`, which refuses
a name whose addresses are not public, at every delivery.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_local_name(host: str) -> bool:
    """The development names that may stand for this machine."""
    return host in _LOCAL_NAMES or host.endswith(".localhost")


def _is_local(host: str) -> bool:
    if is_local_name(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address in ipaddress.ip_network("127.0.0.0/8")


def unsafe_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def webhook_url_problem(url: str) -> str | None:
    """Why the origin refuses to deliver to `url`, or None when it is acceptable."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "webhook URL is malformed"
    if parts.scheme not in ("http", "https") or not host:
        return "webhook URL must be an absolute http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "webhook URL must not carry credentials"
    if _is_local(host):
        return None
    if parts.scheme != "https":
        return "plain http is allowed only for localhost and 127.x"
    if unsafe_address(host):
        return "webhook URL points at a private, loopback, link-local or reserved address"
    return None
