"""Browser-facing headers on every response: CORS (with preflight) and PROTOCOL.md §12.7.

Set globally in on_response_prepare so errors, 304s and live responses carry them too.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Final

from aiohttp import web

from plugin_streams.shared import caching
from plugin_streams.shared import headers as h

ALLOWED_METHODS: Final = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS: Final = ", ".join(h.ALLOWED_REQUEST_HEADERS)
_EXPOSE: Final = ", ".join(h.EXPOSED_HEADERS)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    add_security_headers(response.headers)


def add_security_headers(headers: MutableMapping[str, str]) -> None:
    """The headers every response gets (also used for responses rendered ahead, as bytes)."""
    headers.setdefault(h.X_CONTENT_TYPE_OPTIONS, "nosniff")
    headers.setdefault(h.CROSS_ORIGIN_RESOURCE_POLICY, "cross-origin")
    # `*`, never an echo of Origin: no credentials are ever allowed (bearer tokens travel in
    # Authorization, which `*` permits), and one answer for every site keeps CDN caches whole
    # (an echoed Origin needs `Vary: Origin`, which splits nginx caches and Cloudflare ignores).
    headers[h.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
    headers[h.ACCESS_CONTROL_EXPOSE_HEADERS] = _EXPOSE


async def preflight(request: web.Request) -> web.Response:
    requested = request.headers.get(h.ACCESS_CONTROL_REQUEST_HEADERS, "")
    allowed = ALLOWED_HEADERS + (", " + requested if requested else "")
    return web.Response(
        status=204,
        headers={
            h.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
            h.ACCESS_CONTROL_ALLOW_HEADERS: allowed,
            h.ACCESS_CONTROL_MAX_AGE: "86400",
            h.CACHE_CONTROL: caching.NO_STORE,
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
