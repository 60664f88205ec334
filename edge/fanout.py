"""SSE fan-out: one upstream live subscription per stream feeds every SSE client of it.

A Hub follows the origin's SSE response for one stream (and one credential scope), keeps a
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
import json
import logging
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from plugin_streams.edge.delivery import Delivery, Subscriber
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.reads import EdgeReads, now_ms, respond
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.upstream import Upstream
from plugin_streams.shared import cursor, sse
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.slow_clients import SlowClient, WriteBudget, end_live, write_live
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.auth import SIGNED_PARAMS
from plugin_streams.shared.errors import ProtocolError, Unavailable
from plugin_streams.shared.paths import STREAM_PREFIX

logger = logging.getLogger(__name__)


class Hub:
    def __init__(
        self,
        key: str,
        path: str,
        headers: dict[str, str],
        upstream: Upstream,
        metrics: EdgeMetrics,
        idle_close: float,
        on_end: Callable[[Hub], None],
        credentials_query: str = "",
        keepalive: float = 15.0,
    ) -> None:
        self.key = key
        self.path = path
        self._headers = headers
        self._credentials_query = credentials_query  # a signed URL's parameters, if that is the credential
        self._upstream = upstream
        self._metrics = metrics
        self._idle_close = idle_close
        self._on_end = on_end
        self.position: str | None = None
        self.ready = asyncio.Event()
        self.error: ProtocolError | None = None  # why the hub ended before it could serve
        self.base64 = False
        self.closed = False
        self.ended = False
        self.cursor = 0
        self.delivery = Delivery(metrics)
        self._changed = asyncio.Event()
        self._idle_since = time.monotonic()
        self._last_event = time.monotonic()
        self.task = spawn(self._run(), name="edge-sse-hub")
        self._deliverer = spawn(self.delivery.run(), name="edge-sse-delivery")
        self._keeper = spawn(self._keep_alive(keepalive), name="edge-sse-keepalive")

    # -- upstream ---------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        try:
            while not self.closed:
                if not self.delivery.subscribers and time.monotonic() - self._idle_since > self._idle_close:
                    return
                offset = self.position or h.OFFSET_NOW
                try:
                    await self._follow(offset)
                    backoff = 0.1
                except Unavailable:
                    self._metrics.upstream_errors.inc()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                except ProtocolError as exc:
                    self.error = exc
                    return
        finally:
            self.ended = True
            self._keeper.cancel()
            self._deliverer.cancel()
            self.delivery.flush()  # (e.g. the closing event) before the subscribers are let go
            self.ready.set()
            for subscriber in self.delivery.subscribers:
                subscriber.finish()
            self._wake()
            self._on_end(self)

    async def _follow(self, offset: str) -> None:
        self._metrics.upstream.labels("sse").inc()
        query = f"?{h.QUERY_OFFSET}={offset}&{h.QUERY_LIVE}={h.LIVE_SSE}{self._credentials_query}"
        response = await self._upstream.open_stream(self.path + query, self._headers)
        try:
            if response.status != 200:
                text = (await response.text())[:200]
                error = ProtocolError(text.strip() or "upstream refused")
                error.status = response.status
                raise error if response.status in (400, 401, 403, 404, 410) else Unavailable(text)
            self.base64 = response.headers.get(h.STREAM_SSE_DATA_ENCODING, "").lower() == "base64"
            parser = sse.Parser()
            data: str | None = None
            async for chunk in response.content.iter_any():
                for event in parser.feed(chunk):
                    if event.event == h.SSE_EVENT_DATA:
                        data = event.data
                    elif event.event == h.SSE_EVENT_CONTROL:
                        self._on_control(json.loads(event.data), data)
                        data = None
                if self.closed:
                    return
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"upstream SSE broke: {type(exc).__name__}") from exc
        finally:
            response.release()

    def _on_control(self, control: dict[str, object], data: str | None) -> None:
        next_offset = str(control[h.SSE_NEXT_OFFSET])
        closed = control.get(h.SSE_CLOSED) is True
        up_to_date = control.get(h.SSE_UP_TO_DATE) is True
        if self.position is None:
            self.position = next_offset
            self.ready.set()
        if data is not None or closed or next_offset != self.position:
            wire = (sse.encode_data_text(data) if data is not None else b"") + self._control(
                next_offset, up_to_date or closed, closed
            )
            self.delivery.add(self.position, next_offset, wire, closed)
            self.position = next_offset
            self._last_event = time.monotonic()
        self.closed = closed
        self._wake()

    def _control(self, next_offset: str, up_to_date: bool, closed: bool) -> bytes:
        self.cursor = max(self.cursor, cursor.current_interval(now_ms()))
        payload = sse.control_payload(
            next_offset, cursor=None if closed else self.cursor, up_to_date=up_to_date, closed=closed
        )
        return sse.encode_control(payload)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    # -- subscribers ------------------------------------------------------------------------

    def raise_cursor(self, echoed: int | None) -> None:
        """Cursors never go backwards for anyone: the hub's cursor covers every client's."""
        self.cursor = max(self.cursor, cursor.next_cursor(now_ms(), echoed, self.path))

    def can_take(self, position: str) -> bool:
        if self.ended or self.position is None:
            return False
        return position == self.position or self.delivery.starting_at(position) is not None

    def subscribe(self, position: str, transport: asyncio.Transport, limit: int, chunked: bool) -> Subscriber | None:
        """Join at `position` if it is the hub's position or the start of a recent event."""
        if self.ended or self.position is None:
            return None
        first = self.delivery.count if position == self.position else self.delivery.starting_at(position)
        if first is None:
            return None
        return self.delivery.subscribe(transport, limit, chunked, first)

    async def _keep_alive(self, interval: float) -> None:
        """While no event flows, one comment every `interval` keeps proxies from timing out."""
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_event >= interval:
                self.delivery.comment(sse.KEEP_ALIVE)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.delivery.subscribers.discard(subscriber)
        if not self.delivery.subscribers:
            self._idle_since = time.monotonic()

    def stop(self) -> None:
        self.task.cancel()


#: Header names arrive in any case; the one a hub forwards upstream is compared lower-cased.
_AUTHORIZATION: Final = h.AUTHORIZATION.lower()


class SSEFanout:
    def __init__(self, upstream: Upstream, reads: EdgeReads, metrics: EdgeMetrics, config: object) -> None:
        self.upstream = upstream
        self.reads = reads
        self.metrics = metrics
        self.config = config
        self.hubs: dict[str, Hub] = {}
        self.stopping = False

    def hub(self, scope: ReadScope, headers: dict[str, str], credentials_query: str = "") -> Hub:
        key = scope.credential or scope.path
        hub = self.hubs.get(key)
        if hub is None or hub.ended:
            hub = Hub(
                key,
                STREAM_PREFIX + _quote(scope.path),
                headers,
                self.upstream,
                self.metrics,
                self.config.sse_idle_close,  # type: ignore[attr-defined]
                self._ended,
                credentials_query,
                self.config.sse_keepalive,  # type: ignore[attr-defined]
            )
            self.hubs[key] = hub
        return hub

    def _ended(self, hub: Hub) -> None:
        if self.hubs.get(hub.key) is hub:
            del self.hubs[hub.key]

    def drop(self, path: str) -> None:
        """The stream was deleted or re-created through this edge: end its hubs."""
        for key, hub in list(self.hubs.items()):
            if hub.path == STREAM_PREFIX + _quote(path):
                hub.stop()
                del self.hubs[key]

    async def serve(
        self, http: web.Request, scope: ReadScope, offset_text: str, echoed: int | None
    ) -> web.StreamResponse:
        forwarded = {k: v for k, v in http.headers.items() if k.lower() == _AUTHORIZATION}
        signed = {k: v for k, v in http.query.items() if k in SIGNED_PARAMS}
        hub = self.hub(scope, forwarded, "&" + urlencode(signed) if signed else "")
        try:
            async with asyncio.timeout(self.config.upstream_timeout):  # type: ignore[attr-defined]
                await hub.ready.wait()
        except TimeoutError:
            raise Unavailable("origin did not answer", {h.RETRY_AFTER: "2"}) from None
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

    def _budget(self) -> WriteBudget:
        config = self.config
        return WriteBudget(config.sse_client_buffer, config.sse_write_timeout)  # type: ignore[attr-defined]

    async def _stream(
        self, http: web.Request, response: web.StreamResponse, scope: ReadScope, hub: Hub, offset_text: str
    ) -> web.Response | None:
        """Serve the client until its stream ends; the origin's answer if it refused the first read."""
        config = self.config
        deadline = time.monotonic() + config.sse_max_age  # type: ignore[attr-defined]
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
                limit = config.sse_client_buffer  # type: ignore[attr-defined]
                subscriber = hub.subscribe(position, transport, limit, response.chunked)
                if subscriber is not None:
                    break
                continue
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
            next_offset = reply.headers[h.STREAM_NEXT_OFFSET]
            up_to_date = h.STREAM_UP_TO_DATE in reply.headers
            closed = h.STREAM_CLOSED in reply.headers
            body = reply.body
            has_data = body not in (b"", b"[]")
            wire = sse.encode_data(body, base64_mode=hub.base64) if has_data else b""
            if has_data or closed or not sent_control or next_offset != position:
                wire += hub._control(next_offset, up_to_date or closed, closed)
                await write_live(http, response, wire, self._budget())  # catch-up: written here, not by the hub
                sent_control = True
            position = next_offset
            if closed:
                return None
            if up_to_date and (hub.ended or (hub.position is not None and position > hub.position)):
                await hub.changed(1.0)
        try:
            await self._live(http, response, hub, subscriber, position, sent_control, deadline)
        finally:
            hub.unsubscribe(subscriber)
        return None

    async def _live(
        self,
        http: web.Request,
        response: web.StreamResponse,
        hub: Hub,
        subscriber: Subscriber,
        position: str,
        sent_control: bool,
        deadline: float,
    ) -> None:
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
