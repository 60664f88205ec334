"""The `Location` of a created stream: an absolute URL that no client header chooses.

The protocol wants an absolute URL ending with the request path (the conformance suite parses
it with `new URL`). Building it from the request's `Host` header would let any client make a
server, or a CDN caching the answer, name a host of the client's choosing. So the base is the
operator's `--public-url` when set (what clients use: a proxy or CDN in front), else the
address the connection actually reached.
"""

from __future__ import annotations

from aiohttp import web


def public_location(request: web.Request, public_url: str | None) -> str:
    path = request.rel_url.raw_path
    if public_url:
        return public_url.rstrip("/") + path
    return reached_base(request) + path


def reached_base(request: web.Request) -> str:
    """scheme://host:port of the local socket the request arrived on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    scheme = "https" if transport is not None and transport.get_extra_info("sslcontext") else "http"
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return f"{scheme}://localhost"  # a Unix socket: no address a client could use
    host, port = str(sockname[0]), int(sockname[1])
    if ":" in host:
        host = f"[{host.partition('%')[0]}]"
    return f"{scheme}://{host}:{port}"
