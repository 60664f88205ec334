"""The live page: one self-contained HTML file (origin/ui/index.html) that lists streams and tails one.

Served as a static file, so a CDN can cache it briefly. It loads nothing from anywhere: its one
script and one stylesheet are inline, and a strict Content-Security-Policy allows exactly those
two (by their SHA-256) and requests to this server, so an injected script or a message rendered
as markup could run nothing and send nothing elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from typing import Final

from aiohttp import web

from plugin_streams.shared import headers as h

PAGE = files("plugin_streams.origin").joinpath("ui/index.html")
_INLINE: Final = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)


def content_security_policy(html: bytes) -> str:
    """A policy allowing the page's own inline scripts and styles (by hash) and same-origin fetches."""
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for kind, body in _INLINE.findall(html):
        hashes[kind].append("'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + (" ".join(hashes[b"script"]) or "'none'"),
            "style-src " + (" ".join(hashes[b"style"]) or "'none'"),
            "connect-src 'self'",  # the REST API, /healthz and /readyz
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",  # nobody frames the page to trick a pasted token out of it
        ]
    )


def add_page_routes(app: web.Application) -> None:
    body = PAGE.read_bytes()
    headers = {
        h.CACHE_CONTROL: "public, max-age=60",
        h.CONTENT_SECURITY_POLICY: content_security_policy(body),
        h.REFERRER_POLICY: "no-referrer",
    }

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    app.router.add_get("/ui/", page)
    app.router.add_get("/", root)
