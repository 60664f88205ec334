"""SSE fan-out: one upstream live subscription per stream feeds every SSE client of it.

A Hub (edge.sse_hub) follows the origin's SSE response for one stream (and one credential scope), keeps a
short history of recent events, and pushes each event to every subscriber as the same bytes,
encoded once. A client may start anywhere: it catches up with ordinary reads (from the cache
when it can) until it stands exactly where the hub is, or where one of the hub's recent events
starts, and only then subscribes; the seam has no gap and no duplicate because events are
whole ranges [start, end) and a client subscribes only at an event boundary.

Live events are written straight into each subscriber's transport by the hub's delivery
(edge.delivery: rolling rounds, bytes joined and framed once, no task or coroutine wake-up per
client per event). A subscriber whose unsent bytes pass its budget is cut off (it resumes from
its last offset); it never slows the others or grows memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote, urlencode

from aiohttp import web

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.delivery import Subscriber
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.reads import EdgeReads, respond
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.sse_hub import Hub, ProtocolHub
from plugin_streams.edge.upstream import Reply, Upstream
from plugin_streams.shared import headers as h
from plugin_streams.shared import sse
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.slow_clients import SlowClient, WriteBudget, end_live, write_live
from plugin_streams.shared.auth import SIGNED_PARAMS
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.paths import STREAM_PREFIX

logger = logging.getLogger(__name__)

#: Header names arrive in any case; the one a hub forwards upstream is compared lower-cased.
_AUTHORIZATION: Final = h.AUTHORIZATION.lower()


class SSEFanout:
    def __init__(self, upstream: Upstream, reads: EdgeReads, metrics: EdgeMetrics, config: EdgeConfig) -> None:
        self.upstream = upstream
        self.reads = reads
        self.metrics = metrics
        self.config = config
        self.hubs: dict[str, Hub] = {}
        self.stopping = False

    def hub(self, scope: ReadScope, headers: dict[str, str], credentials_query: str = "") -> ProtocolHub:
        key = scope.credential or scope.path
        hub = self.hubs.get(key)
        if not isinstance(hub, ProtocolHub) or hub.ended:
            hub = ProtocolHub(
                key,
                scope.path,
                STREAM_PREFIX + _quote(scope.path),
                headers,
                self.upstream,
                self.metrics,
                self.config.sse_idle_close,
                self.release,
                credentials_query,
                self.config.sse_keepalive,
            )
            self.hubs[key] = hub
        return hub

    def release(self, hub: Hub) -> None:
        """A hub's end callback: it leaves the registry (unless replaced already)."""
        if self.hubs.get(hub.key) is hub:
            del self.hubs[hub.key]

    def join(self, key: str, make: Callable[[str], Hub]) -> Hub:
        """The live hub under `key`, or a new one `make(key)` (another API's hubs: edge.rest)."""
        hub = self.hubs.get(key)
        if hub is None or hub.ended:
            hub = self.hubs[key] = make(key)
        return hub

    def drop(self, path: str) -> None:
        """The stream was deleted or re-created through this edge: end its hubs (every API's)."""
        for key, hub in list(self.hubs.items()):
            if hub.stream == path:
                hub.stop()
                del self.hubs[key]

    async def serve(
        self, http: web.Request, scope: ReadScope, offset_text: str, echoed: int | None
    ) -> web.StreamResponse:
        forwarded = {k: v for k, v in http.headers.items() if k.lower() == _AUTHORIZATION}
        signed = {k: v for k, v in http.query.items() if k in SIGNED_PARAMS}
        hub = self.hub(scope, forwarded, "&" + urlencode(signed) if signed else "")
        try:
            async with asyncio.timeout(self.config.upstream_timeout):
                await hub.ready.wait()
        except TimeoutError:
            raise self.upstream.no_answer("sse", self.config.upstream_timeout) from None
        if hub.error is not None:
            raise hub.error
        hub.raise_cursor(echoed)
        response = web.StreamResponse(status=200)
        if http.version >= (1, 1):
            # Explicit, so that `response.chunked` tells the hub to frame what it writes raw.
            response.enable_chunked_encoding()
        response.headers[h.CONTENT_TYPE] = h.SSE_CONTENT_TYPE
        response.headers[h.CACHE_CONTROL] = "no-cache"
        response.headers[h.X_ACCEL_BUFFERING] = "no"
        if hub.base64:
            response.headers[h.STREAM_SSE_DATA_ENCODING] = "base64"
        # The status line waits for the first bytes: until then, an offset the origin refuses
        # (not a message boundary, gone, ...) is answered with the origin's own error.
        gauge = self.metrics.live_clients.labels("sse")
        gauge.inc()
        try:
            with leaves_with_client(http):  # a client that leaves frees its place at once
                refused = await self._stream(http, response, scope, hub, offset_text)
            if refused is not None and not response.prepared:
                return refused
        except SlowClient:
            self.metrics.slow_disconnects.inc()
            return response
        except ProtocolError:
            if not response.prepared:
                raise
            return response
        except ConnectionResetError:
            return response
        finally:
            gauge.dec()
        with contextlib.suppress(ConnectionResetError):
            await _started(http, response)
            await end_live(http, response, self._budget())
        return response

    async def _send_read(
        self,
        http: web.Request,
        response: web.StreamResponse,
        hub: ProtocolHub,
        reply: Reply,
        position: str,
        sent_control: bool,
    ) -> bool:
        """Write one catch-up read's events (here, not through the hub); whether a control went out."""
        next_offset = reply.headers[h.STREAM_NEXT_OFFSET]
        closed = h.STREAM_CLOSED in reply.headers
        has_data = reply.body not in (b"", b"[]")
        if not (has_data or closed or not sent_control or next_offset != position):
            return False
        wire = sse.encode_data(reply.body, base64_mode=hub.base64) if has_data else b""
        wire += hub._control(next_offset, h.STREAM_UP_TO_DATE in reply.headers or closed, closed)
        await write_live(http, response, wire, self._budget())
        return True

    def _budget(self) -> WriteBudget:
        config = self.config
        return WriteBudget(config.sse_client_buffer, config.sse_write_timeout)

    async def _stream(
        self, http: web.Request, response: web.StreamResponse, scope: ReadScope, hub: ProtocolHub, offset_text: str
    ) -> web.Response | None:
        """Serve the client until its stream ends; the origin's answer if it refused the first read."""
        config = self.config
        deadline = time.monotonic() + config.sse_max_age
        position = hub.position if offset_text == h.OFFSET_NOW else offset_text
        assert position is not None
        sent_control = False
        subscriber: Subscriber | None = None
        # Catch up with ordinary reads until the client stands where the hub can take it.
        while subscriber is None:
            if self.stopping or time.monotonic() > deadline or hub.error is not None:
                return None
            if hub.can_take(position):
                await _started(http, response)
                if not sent_control and position == hub.position:
                    # The first control goes out before any live bytes (the hub may move meanwhile,
                    # then the loop tries again: from its history, or with another read).
                    await write_live(http, response, hub._control(position, True, False), self._budget())
                    sent_control = True
                transport = http.transport
                if transport is None:
                    return None
                limit = config.sse_client_buffer
                subscriber = hub.subscribe(position, transport, limit, response.chunked)
                continue  # subscribed (the loop ends), or the hub moved on: try again
            # (A hub that ended, e.g. at closure, leaves the client to plain reads, which say so.)
            live_ahead = not hub.ended and hub.position is not None and position != h.OFFSET_START
            if live_ahead and hub.position is not None and position > hub.position:
                await _started(http, response)  # the client hears from us before any wait
                await hub.changed(1.0)  # the origin is ahead of the hub: let it catch up
                continue
            reply = await self.reads.read_at(http, scope, position)
            if reply.status != 200:
                return respond(reply, http)
            await _started(http, response)
            closed = h.STREAM_CLOSED in reply.headers
            sent_control |= await self._send_read(http, response, hub, reply, position, sent_control)
            position = reply.headers[h.STREAM_NEXT_OFFSET]
            if closed:
                return None
            if h.STREAM_UP_TO_DATE in reply.headers and (
                hub.ended or (hub.position is not None and position > hub.position)
            ):
                await hub.changed(1.0)
        try:
            await self.live(http, subscriber, deadline)
        finally:
            hub.unsubscribe(subscriber)
        return None

    async def live(self, http: web.Request, subscriber: Subscriber, deadline: float) -> None:
        """The hub writes; this only waits for the end: closure, overflow, shutdown or max age."""
        remaining = deadline - time.monotonic()
        if remaining > 0 and not (subscriber.done or subscriber.overflow or self.stopping):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await subscriber.wake.wait()
        if subscriber.overflow:
            self.metrics.slow_disconnects.inc()
            _abort(http)

    def shutdown(self) -> None:
        self.stopping = True
        for hub in list(self.hubs.values()):
            for subscriber in hub.delivery.subscribers:
                subscriber.finish()
            hub.stop()


async def _started(http: web.Request, response: web.StreamResponse) -> None:
    if not response.prepared:
        await response.prepare(http)


def _quote(path: str) -> str:
    return quote(path, safe="/-_.~!$&'()*+,;=:@")


def _abort(http: web.Request) -> None:
    """Drop a slow client's connection now, discarding what its socket still holds."""
    if http.transport is not None:
        http.transport.abort()
