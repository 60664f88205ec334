"""Edge handlers: classify each request, then pass it through, or serve it from the cache and hubs.

Writes (PUT, POST, DELETE), HEAD and `offset=now` go to the origin with their headers and
bodies intact (large bodies streamed); the edge never retries them. Catch-up and long-poll reads
go through EdgeReads, SSE through the fan-out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.fanout import SSEFanout
from plugin_streams.edge.reads import EdgeReads, respond
from plugin_streams.edge.region.rest import RegionRest
from plugin_streams.edge.region.router import RegionRouter
from plugin_streams.edge.scope import read_scope
from plugin_streams.edge.upstream import Reply, Upstream
from plugin_streams.shared import headers as h
from plugin_streams.shared import parse
from plugin_streams.shared.aio.cors import preflight
from plugin_streams.shared.aio.location import public_location
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.errors import MethodNotAllowed, ProtocolError
from plugin_streams.shared.offsets import NOW, Offset, parse_offset
from plugin_streams.shared.paths import validate_path

#: Bodies up to this size are read whole and forwarded with a Content-Length; larger ones stream.
BUFFERED_BODY = 1024 * 1024
#: The first path segment the protocol reserves for its control APIs (subscriptions).
RESERVED_SEGMENT = "__ds"


class EdgeHandlers:
    def __init__(
        self, upstream: Upstream, reads: EdgeReads, fanout: SSEFanout, cache: ChunkCache, policy: AccessPolicy
    ) -> None:
        self.upstream = upstream
        self.reads = reads
        self.fanout = fanout
        self.cache = cache
        self.policy = policy
        self.region: RegionRouter | None = None  # set when this edge keeps a regional replica
        self.region_rest: RegionRest | None = None  # the same replica, for the REST API
        self.public_url: str | None = None  # base URL of a create's Location (EdgeConfig.public_url)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return await preflight(request)
        path = validate_path(request.match_info["path"])
        if path == RESERVED_SEGMENT or path.startswith(RESERVED_SEGMENT + "/"):
            return await self.reserved(request)
        if self.region is not None:
            local = await self._regional(request, path, self.region)
            if local is not None:
                return local
        if request.method in ("PUT", "POST", "DELETE"):
            return await self.write(request, path)
        if request.method == "HEAD":
            return respond(await self.upstream.request("HEAD", request.raw_path, request.headers), request)
        if request.method != "GET":
            raise MethodNotAllowed(
                f"method {request.method} not allowed", {h.ALLOW: "GET, HEAD, PUT, POST, DELETE, OPTIONS"}
            )
        return await self.read(request, path)

    async def reserved(self, request: web.Request, *, timeout: float | None = None) -> web.Response:
        """An origin API that is no stream (`__ds` subscriptions, the KV API): forwarded as is, never
        cached here; `timeout` for answers the origin may hold back (a waiting queue lease)."""
        body = await request_body(request) if request.can_read_body else None
        reply = await self.upstream.request(request.method, request.raw_path, request.headers, body, timeout=timeout)
        return respond(reply, request)

    async def _regional(self, request: web.Request, path: str, region: RegionRouter) -> web.StreamResponse | None:
        """A regional replica's answer: writes go to the origin through it, reads it holds it answers."""
        if request.method in ("PUT", "POST", "DELETE"):
            return await region.write(request, path, self.write)
        if request.method in ("GET", "HEAD"):
            return await region.read(request, path)
        return None

    async def read(self, request: web.Request, path: str) -> web.StreamResponse:
        """A GET the edge answers: SSE from a hub, long-poll and catch-up through its cache."""
        query = request.query
        read = parse.parse_read(query, query.getall(h.QUERY_OFFSET, []))
        scope = read_scope(path, request.headers, query, self.policy)
        if read.live == h.LIVE_SSE:
            return await self.fanout.serve(request, scope, query[h.QUERY_OFFSET], read.cursor)
        if read.live == h.LIVE_LONG_POLL:
            return await self.reads.long_poll(request, scope, read)
        if read.offset is NOW:
            return respond(await self.upstream.request("GET", request.raw_path, request.headers), request)
        return await self.reads.catch_up(request, scope, read)

    async def write(self, request: web.Request, path: str) -> web.Response:
        body = await request_body(request)
        reply = await self.upstream.request(request.method, request.raw_path, request.headers, body)
        if reply.status < 300:
            self.reads.wrote(path, _append_end(request, reply))
            if request.method == "DELETE" or reply.status == 201:
                self.cache.drop_stream(path)
                self.fanout.drop(path)
        response = respond(reply, request)
        if h.LOCATION in response.headers:
            # The origin names itself; a client of this edge should be sent back here (by the
            # configured public URL or the address reached, never by the client's Host header).
            response.headers[h.LOCATION] = public_location(request, self.public_url)
        return response


def _append_end(request: web.Request, reply: Reply) -> Offset | None:
    """Where an acknowledged append ended; None for any other write (create, delete, close)."""
    if request.method != "POST" or h.STREAM_CLOSED in request.headers or h.STREAM_CLOSED in reply.headers:
        return None
    try:
        return parse_offset(reply.headers.get(h.STREAM_NEXT_OFFSET, ""))
    except ProtocolError:
        return None


async def request_body(request: web.Request) -> bytes | AsyncIterator[bytes]:
    """A request's body to forward: read whole when small (sent with a Content-Length), else streamed."""
    if request.content_length is not None and request.content_length <= BUFFERED_BODY:
        return await request.read()
    return _stream(request)


async def _stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(64 * 1024):
        yield chunk
