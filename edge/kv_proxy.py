"""The KV API at an edge: passed on to the origin, except an unfiltered watch, which is the
database's change stream and so is sent to the edge's own stream path, where it is cached,
coalesced and fanned out like any stream (a prefix-filtered watch is answered by the origin).

KV reads and writes are not cached here: every answer reflects the origin's durable state.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from plugin_streams.edge.handlers import EdgeHandlers
from plugin_streams.shared.kv.routes import KV_PREFIX, MAX_LEASE_WAIT_MS, QUERY_PREFIX, WATCH, change_stream_path

#: A lease may wait this long at the origin; the upstream read allows for it.
_UPSTREAM_READ_S = MAX_LEASE_WAIT_MS / 1000 + 10


def add_kv_routes(app: web.Application, handlers: Callable[[], EdgeHandlers]) -> None:
    async def forward(request: web.Request) -> web.StreamResponse:
        db, _, rest = request.match_info["rest"].partition("/")
        if request.method == "GET" and rest == WATCH and QUERY_PREFIX not in request.query:
            location = "/v1/stream/" + change_stream_path(db)
            if request.query_string:
                location += "?" + request.query_string
            raise web.HTTPTemporaryRedirect(location)
        return await handlers().reserved(request, timeout=_UPSTREAM_READ_S)

    app.router.add_route("*", KV_PREFIX + "/{rest:.+}", forward)
