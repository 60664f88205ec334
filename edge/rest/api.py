"""The REST API's routes at the edge: reads and tails served here, everything else passed through.

- `GET .../:name/read?after=` and `GET .../:name/tail`: edge.rest.reads and edge.rest.tails.
  (`read?before=`, which pages backwards from an offset, is the origin's to answer.)
- Writes (create, append, close, delete), descriptions and listings go to the origin exactly as
  often as the client sends them (never retried here), and tell the edge what changed: an append
  where it ended (read-your-writes, edge.writes), a create or delete that the stream's cached
  pages, chunks and hubs are gone.
- At a regional edge, the replica answers what it holds and writes wait for it to catch up
  (edge.region), as for the protocol.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.handlers import BUFFERED_BODY, EdgeHandlers, request_body
from plugin_streams.edge.rest.paths import response_headers, stream_name
from plugin_streams.edge.rest.reads import RestReads
from plugin_streams.edge.rest.tails import RestTails
from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import JSON
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.offsets import Offset, parse_offset
from plugin_streams.shared.rest_routes import REST_PREFIX, STREAMS_PATH


class RestApi:
    def __init__(self, handlers: EdgeHandlers, config: EdgeConfig) -> None:
        self.handlers = handlers
        self.config = config
        self.reads = RestReads(
            handlers.upstream, handlers.cache, handlers.reads, handlers.reads.metrics, handlers.policy
        )
        self.tails = RestTails(
            handlers.upstream, self.reads, handlers.fanout, handlers.reads.metrics, config, handlers.policy
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ProtocolError as exc:
            return JSON.response(exc)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        name, action = stream_name(request.rel_url.path_safe)
        region = self.handlers.region_rest
        if request.method == "GET" and name is not None:
            if region is not None:
                local = await region.read(request, name, action)
                if local is not None:
                    return local
            if action == "read" and "before" not in request.query:
                return await self.reads.read(request, name)
            if action == "tail":
                return await self.tails.tail(request, name)
        if region is not None and request.method in ("POST", "DELETE"):
            if name is None and request.rel_url.path_safe == STREAMS_PATH:
                name = await _created_name(request)
            return await region.write(request, name, self.forward)
        return await self.forward(request)

    async def forward(self, request: web.Request) -> web.Response:
        handlers = self.handlers
        body: bytes | AsyncIterator[bytes] | None = None
        if request.method not in ("GET", "HEAD") and request.body_exists:
            body = await request_body(request)
        reply = await handlers.upstream.request(request.method, request.raw_path, request.headers, body)
        self._changed(request, reply, body)
        payload = reply.body if reply.status not in (204, 304) else None
        return web.Response(status=reply.status, body=payload, headers=response_headers(reply.headers))

    def _changed(self, request: web.Request, reply: Reply, body: object) -> None:
        """Tell the edge what an acknowledged write changed (as edge.handlers does for the protocol)."""
        if reply.status >= 300 or request.method not in ("POST", "DELETE"):
            return
        name, action = stream_name(request.rel_url.path_safe)
        if name is None and request.rel_url.path_safe == STREAMS_PATH and isinstance(body, bytes):
            with contextlib.suppress(ValueError, AttributeError):
                name = json.loads(body).get("name")
        if not isinstance(name, str):
            return
        handlers = self.handlers
        handlers.reads.wrote(name, _append_end(request, action, reply))
        if request.method == "DELETE" or reply.status == 201:
            handlers.cache.drop_stream(name)
            handlers.fanout.drop(name)

    def shutdown(self) -> None:
        self.tails.shutdown()


async def _created_name(request: web.Request) -> str | None:
    """The name a create's JSON body gives (read only when small: the forward reuses the bytes)."""
    if request.content_length is None or request.content_length > BUFFERED_BODY:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        name = json.loads(await request.read()).get("name")
        return name if isinstance(name, str) else None
    return None


def _append_end(request: web.Request, action: str | None, reply: Reply) -> Offset | None:
    """Where an acknowledged append ended; None for any other write (create, delete, close)."""
    if action != "append" or h.STREAM_CLOSED in request.headers:
        return None
    with contextlib.suppress(ProtocolError):
        return parse_offset(reply.headers.get(h.STREAM_NEXT_OFFSET, ""))
    return None


def add_rest_routes(app: web.Application, handlers: Callable[[], EdgeHandlers], config: EdgeConfig) -> None:
    """Route the REST API to a RestApi built (once) over the edge's handlers when they exist."""
    built: dict[str, RestApi] = {}

    def api() -> RestApi:
        if "api" not in built:
            built["api"] = RestApi(handlers(), config)
        return built["api"]

    async def handle(request: web.Request) -> web.StreamResponse:
        return await api().handle(request)

    async def on_shutdown(app: web.Application) -> None:
        if "api" in built:
            built["api"].shutdown()

    app.on_shutdown.append(on_shutdown)
    app.router.add_route("*", REST_PREFIX + "/{tail:.*}", handle)
