"""The live page: a small HTML view that lists streams and tails one (origin/ui/index.html).

Served as a static file, so the edge can pass it through and a CDN can cache it briefly.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from plugin_streams.shared import headers as h

PAGE = files("plugin_streams.origin").joinpath("ui/index.html")


def add_page_routes(app: web.Application) -> None:
    body = PAGE.read_bytes()

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            body=body, content_type="text/html", charset="utf-8", headers={h.CACHE_CONTROL: "public, max-age=60"}
        )

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    app.router.add_get("/ui/", page)
    app.router.add_get("/", root)
