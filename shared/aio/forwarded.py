"""X-Forwarded-For: which client a request is for, when it came through proxies we trust.

Behind an edge or a CDN every request arrives from the proxy's address, so anything keyed on
the TCP peer (the origin's rate limit) would treat all their clients as one. Each proxy appends
the address it received the request from; reading right to left, the entries our trusted
proxies appended are skipped, and the first one left is the client. Entries further left were
written by the client itself and prove nothing, and from an untrusted peer the header is
ignored altogether: it can only claim to be someone else.

The edge is such a proxy: `forwarding_middleware` appends the peer to what it sends upstream.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import Handler

FORWARDED_FOR: Final = h.X_FORWARDED_FOR
_MAX_ENTRY: Final = 64  # longer entries are not addresses; kept short as keys


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str | None) -> bool:
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, request: web.BaseRequest) -> str | None:
        """The address the request is for: the peer, or what trusted proxies say it forwarded."""
        client = request.remote
        if not self.trusts(client):
            return client
        hops = [hop.strip() for value in request.headers.getall(FORWARDED_FOR, ()) for hop in value.split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            client = hop[:_MAX_ENTRY]
            if not self.trusts(client):
                break
        return client


def forwarded_for(headers: CIMultiDict[str], peer: str | None) -> None:
    """Append `peer` to X-Forwarded-For in `headers` (a proxy's own hop)."""
    if peer is None:
        return
    previous = ", ".join(headers.getall(FORWARDED_FOR, ()))
    headers[FORWARDED_FOR] = f"{previous}, {peer}" if previous else peer


@web.middleware
async def forwarding_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests handled by a proxy carry X-Forwarded-For with their peer appended (whatever
    the handler forwards upstream passes it on)."""
    headers = CIMultiDict((name, _encodable(value)) for name, value in request.headers.items())
    forwarded_for(headers, request.remote)
    return await handler(request.clone(headers=headers))


def _encodable(value: str) -> str:
    """`value` as text that encodes to UTF-8 (clone() encodes every header so).

    aiohttp hands header bytes that are not UTF-8 over as lone surrogates; those become U+FFFD.
    They could never match a credential (an access policy is UTF-8 text) or any other value.
    """
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
