"""The REST API through the edge: a pass-through to the origin, live tails streamed unbuffered.

The edge adds no caching of its own here (the origin's Cache-Control still reaches CDNs), and
never retries: like protocol writes, REST requests reach the origin exactly as often as the
client sends them. Writes that pass through invalidate what the edge holds for the stream, as
the protocol's do. An SSE tail is copied chunk by chunk as it arrives; if the origin goes away
the response simply ends, and the client resumes from its last event id (elsewhere, if need be).

Answers keep every end-to-end header that matters to a cache in front, `Vary` included: REST
reads differ by `Accept` (JSON or raw) and may be `public, immutable`, so a CDN that never saw
`Vary: Accept` would hand one representation to every client for a year.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Final
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.handlers import BUFFERED_BODY, EdgeHandlers
from plugin_streams.edge.upstream import Reply, end_to_end
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import JSON
from plugin_streams.shared.errors import ProtocolError

REST_PREFIX: Final = "/streams/api/v1"
_STREAMS: Final = REST_PREFIX + "/streams"
_ACTIONS: Final = frozenset({"append", "read", "tail"})


def response_headers(upstream: CIMultiDict[str] | CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The origin's answer headers for the client: end-to-end ones, and `Vary`.

    (edge.upstream drops `Vary` with the headers this process sets itself; the edge adds no
    `Vary` of its own, so the origin's is the whole of it.)
    """
    headers = end_to_end(upstream)
    if h.VARY not in headers:
        for value in upstream.getall(h.VARY, ()):
            headers.add(h.VARY, value)
    return headers


def stream_name(path_safe: str) -> tuple[str | None, str | None]:
    """(stream name, action) named by a REST path, as the origin splits it; (None, None) if none."""
    if not path_safe.startswith(_STREAMS + "/"):
        return None, None
    rest = path_safe[len(_STREAMS) + 1 :]
    head, sep, last = rest.rpartition("/")
    if sep and last in _ACTIONS:
        return unquote(head), last
    return unquote(rest), None


class RestProxy:
    def __init__(self, handlers: Callable[[], EdgeHandlers], config: EdgeConfig) -> None:
        self._handlers = handlers
        self.config = config
        self._live: set[aiohttp.ClientResponse] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "GET" and _is_sse_tail(request):
                return await self._stream(request)
            return await self._forward(request)
        except ProtocolError as exc:
            return JSON.response(exc)

    async def _forward(self, request: web.Request) -> web.Response:
        handlers = self._handlers()
        body: bytes | AsyncIterator[bytes] | None = None
        if request.method not in ("GET", "HEAD") and request.body_exists:
            if request.content_length is not None and request.content_length <= BUFFERED_BODY:
                body = await request.read()
            else:
                body = _chunks(request)
        timeout = None
        if request.method == "GET" and request.query.get("mode") == "long-poll":
            timeout = self.config.long_poll_timeout + self.config.upstream_timeout
        upstream = handlers.upstream
        reply = await upstream.request(request.method, request.raw_path, request.headers, body, timeout=timeout)
        self._invalidate(handlers, request, reply, body)
        payload = reply.body if reply.status not in (204, 304) else None
        return web.Response(status=reply.status, body=payload, headers=response_headers(reply.headers))

    def _invalidate(self, handlers: EdgeHandlers, request: web.Request, reply: Reply, body: object) -> None:
        """Forget what the edge holds for a stream a write just changed (as edge.handlers does)."""
        if reply.status >= 300 or request.method not in ("POST", "DELETE"):
            return
        name, _ = stream_name(request.rel_url.path_safe)
        if name is None and request.rel_url.path_safe == _STREAMS and isinstance(body, bytes):
            with contextlib.suppress(ValueError, AttributeError):
                name = json.loads(body).get("name")
        if not isinstance(name, str):
            return
        handlers.reads.wrote(name)
        if request.method == "DELETE" or reply.status == 201:
            handlers.cache.drop_stream(name)
            handlers.fanout.drop(name)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        upstream = self._handlers().upstream
        source = await upstream.open_stream(request.raw_path, request.headers)
        try:
            if source.status != 200:
                body = await source.read()
                return web.Response(status=source.status, body=body or None, headers=response_headers(source.headers))
            response = web.StreamResponse(status=200, headers=response_headers(source.headers))
            await response.prepare(request)
            self._live.add(source)
            # The origin writes at least a keep-alive comment every sse_keepalive seconds; a
            # silence much longer than that is a dead connection, not an idle stream.
            idle = self.config.sse_keepalive * 3 + self.config.upstream_timeout
            try:
                while True:
                    async with asyncio.timeout(idle):
                        chunk = await source.content.readany()
                    if not chunk:
                        break
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError, ConnectionResetError):
                pass  # either side went away: end the response, the client resumes
            finally:
                self._live.discard(source)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response
        finally:
            source.release()

    def shutdown(self) -> None:
        """End every proxied tail now, so clients move to another edge while this one drains."""
        for source in list(self._live):
            source.close()


def _is_sse_tail(request: web.Request) -> bool:
    _, action = stream_name(request.rel_url.path_safe)
    return action == "tail" and request.query.get("mode", "sse") == "sse"


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(64 * 1024):
        yield chunk


def add_rest_proxy(app: web.Application, handlers: Callable[[], EdgeHandlers], config: EdgeConfig) -> None:
    proxy = RestProxy(handlers, config)

    async def on_shutdown(app: web.Application) -> None:
        proxy.shutdown()

    app.on_shutdown.append(on_shutdown)
    app.router.add_route("*", REST_PREFIX + "/{tail:.*}", proxy.handle)
