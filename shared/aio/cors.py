"""Browser-facing headers on every response: CORS (with preflight) and PROTOCOL.md §12.7.

Set globally in on_response_prepare so errors, 304s and live responses carry them too.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Final

from aiohttp import web

from plugin_streams.shared.headers import EXPOSED_HEADERS

ALLOWED_METHODS: Final = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS: Final = (
    "Authorization, Content-Type, If-None-Match, Stream-TTL, Stream-Expires-At, Stream-Seq, "
    "Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset, "
    "Producer-Id, Producer-Epoch, Producer-Seq, Stream-Retention-Max-Age, Stream-Retention-Max-Bytes, "
    "Stream-Max-Size"
)
_EXPOSE: Final = ", ".join(EXPOSED_HEADERS)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    add_security_headers(response.headers)


def add_security_headers(headers: MutableMapping[str, str]) -> None:
    """The headers every response gets (also used for responses rendered ahead, as bytes)."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin")
    # `*`, never an echo of Origin: no credentials are ever allowed (bearer tokens travel in
    # Authorization, which `*` permits), and one answer for every site keeps CDN caches whole
    # (an echoed Origin needs `Vary: Origin`, which splits nginx caches and Cloudflare ignores).
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = _EXPOSE


async def preflight(request: web.Request) -> web.Response:
    requested = request.headers.get("Access-Control-Request-Headers", "")
    allowed = ALLOWED_HEADERS + (", " + requested if requested else "")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": allowed,
            "Access-Control-Max-Age": "86400",
            "Cache-Control": "no-store",
        },
    )


class _PreflightResource(web.DynamicResource):
    """OPTIONS on any path, invisible to every other method.

    A plain catch-all OPTIONS route would match every path, so aiohttp would answer 405 (not
    404) for paths nothing serves, and list OPTIONS as allowed where nothing else is.
    """

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo | None, set[str]]:
        if request.method != "OPTIONS":
            return None, set()
        return await super().resolve(request)


def add_cors_routes(app: web.Application) -> None:
    resource = _PreflightResource("/{tail:.*}")
    app.router.register_resource(resource)
    resource.add_route("OPTIONS", preflight)
