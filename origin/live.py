"""Live reads: long-poll and SSE, woken by commits (never by polling).

Long-poll answers at once when data exists past the offset, or with an immediate 204 when the
stream is closed at the tail; otherwise it waits up to the configured timeout. SSE writes each
data event together with its control event in one write, sends a keep-alive comment while idle,
ends after about a minute (so CDNs can collapse reconnections), and ends at once with a final
control event when the stream closes or the server shuts down.

A live read holds a slot (origin.limits) only while its client is there: a client that leaves
ends the wait at once (shared.aio.departure), and an SSE client that stops reading is cut off
by its write budget (shared.aio.slow_clients) rather than holding a blocked write for ever.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager

from aiohttp import web
from multidict import CIMultiDict

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.kv.metrics import LiveMode
from plugin_streams.origin.kv.watch_lag import is_change_stream
from plugin_streams.origin.limits import LiveLimiter, live_connection
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.positions import resolve_position
from plugin_streams.origin.reads import ReadResult, read, wait_for_data
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import caching, content_types, cursor, sse
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.slow_clients import SlowClient, WriteBudget, end_live, write_live
from plugin_streams.shared.errors import NotFound, ProtocolError
from plugin_streams.shared.offsets import NOW, START
from plugin_streams.shared.parse import ReadRequest


class LiveReads:
    def __init__(
        self, service: StreamService, config: OriginConfig, metrics: OriginMetrics, limit: LiveLimiter
    ) -> None:
        self.service = service
        self.config = config
        self.metrics = metrics
        self.limit = limit
        self.budget = WriteBudget(config.sse_client_buffer, config.sse_write_timeout)

    def _open(self, mode: str) -> AbstractContextManager[None]:
        return live_connection(self.limit, self.metrics.live.labels(mode))

    def _cursor(self, state: StreamState, position: int, echoed: int | None) -> int:
        return cursor.next_cursor(self.service.clock_ms(), echoed, f"{state.generation}:{position}")

    async def _wait(self, state: StreamState, position: int, timeout: float) -> bool:
        if self.service.stopping:
            return False
        woke = await wait_for_data(state, position, timeout, lambda: self.service.stopping)
        return woke and not self.service.stopping

    # -- long-poll --------------------------------------------------------------------------

    async def long_poll(
        self, http: web.Request, state: StreamState, request: ReadRequest, scope: caching.Scope
    ) -> web.Response:
        position = resolve_position(state, request.offset)
        waited = position >= state.tail and not state.closed
        if waited:
            with self._open("long_poll"), leaves_with_client(http):
                await self._wait(state, position, self.config.long_poll_timeout)
            if state.removed:
                raise NotFound("stream was deleted")
            self.service.touch(state, self.service.clock_ms())
        if position < state.tail:
            result = await read(self.service.store, state, position, self.config.chunk_size)
            if waited:
                self._delivered("long_poll", state, result)
            return self._long_poll_data(state, result, request, scope)
        out: CIMultiDict[str] = CIMultiDict()
        out[h.STREAM_NEXT_OFFSET] = str(state.offset_at(position))
        out[h.STREAM_UP_TO_DATE] = "true"
        out[h.CACHE_CONTROL] = caching.NO_STORE
        if state.closed:
            out[h.STREAM_CLOSED] = "true"
        else:
            out[h.STREAM_CURSOR] = str(self._cursor(state, position, request.cursor))
        return web.Response(status=204, headers=out)

    def _long_poll_data(
        self, state: StreamState, result: ReadResult, request: ReadRequest, scope: caching.Scope
    ) -> web.Response:
        out: CIMultiDict[str] = CIMultiDict()
        out[h.CONTENT_TYPE] = state.config.content_type
        next_offset = str(state.offset_at(result.end))
        out[h.STREAM_NEXT_OFFSET] = next_offset
        out[h.ETAG] = caching.etag(str(state.offset_at(result.start)), next_offset, closed=result.closed)
        if request.offset is NOW:
            out[h.CACHE_CONTROL] = caching.NO_STORE  # "now" names a different place every time
        elif request.offset is START:
            out[h.CACHE_CONTROL] = caching.catch_up(scope, complete=False, explicit_offset=False)
        elif result.complete:
            out[h.CACHE_CONTROL] = caching.catch_up(scope, complete=True, explicit_offset=True)
        else:
            out[h.CACHE_CONTROL] = caching.long_poll(scope)
        key = caching.surrogate_key(state.config.path)
        out[h.SURROGATE_KEY] = key
        out[h.CACHE_TAG] = key
        if result.up_to_date:
            out[h.STREAM_UP_TO_DATE] = "true"
        if result.closed:
            out[h.STREAM_CLOSED] = "true"
        else:
            out[h.STREAM_CURSOR] = str(self._cursor(state, result.start, request.cursor))
        return web.Response(status=200, body=result.body, headers=out)

    # -- SSE --------------------------------------------------------------------------------

    async def sse(self, http: web.Request, state: StreamState, request: ReadRequest) -> web.StreamResponse:
        position = resolve_position(state, request.offset)
        base64_mode = content_types.sse_is_base64(state.config.content_type)
        response = web.StreamResponse(status=200)
        response.headers[h.CONTENT_TYPE] = h.SSE_CONTENT_TYPE
        response.headers[h.CACHE_CONTROL] = caching.SSE
        response.headers[h.X_ACCEL_BUFFERING] = "no"
        if base64_mode:
            response.headers[h.STREAM_SSE_DATA_ENCODING] = "base64"
        with self._open("sse"), leaves_with_client(http):
            return await self._stream_events(http, response, state, position, request, base64_mode)

    async def _stream_events(
        self,
        http: web.Request,
        response: web.StreamResponse,
        state: StreamState,
        position: int,
        request: ReadRequest,
        base64_mode: bool,
    ) -> web.StreamResponse:
        # The first read comes before the status line: an offset the stream cannot serve (not a
        # message boundary, no longer retained) is answered with its own 4xx, not inside a 200.
        first: ReadResult | None = None
        if position < state.tail:
            first = await read(self.service.store, state, position, self.config.chunk_size)
        await response.prepare(http)
        try:
            await self._events(http, response, state, position, request, base64_mode, first)
            await end_live(http, response, self.budget)
        except SlowClient:
            self.metrics.rejected.labels("sse_slow_client").inc()
        except ConnectionResetError:
            pass  # the client went away; nothing left to tell it
        except ProtocolError:
            # The status is sent: a later read that fails (its data dropped by retention meanwhile)
            # just ends the stream; the client resumes from its last control event and is told why.
            with contextlib.suppress(SlowClient, ConnectionResetError):
                await end_live(http, response, self.budget)
        return response

    async def _events(
        self,
        http: web.Request,
        response: web.StreamResponse,
        state: StreamState,
        position: int,
        request: ReadRequest,
        base64_mode: bool,
        first: ReadResult | None,
    ) -> None:
        """Data and control events from `position` until the stream closes or the response ages out."""
        deadline = time.monotonic() + self.config.sse_max_age
        sent_control = False
        reached_tail = False  # after the catch-up, all data is new: its delivery lag is measured
        while not state.removed:
            if first is not None or position < state.tail:
                result = (
                    first
                    if first is not None
                    else await read(self.service.store, state, position, self.config.chunk_size)
                )
                first = None
                position = result.end
                if reached_tail:
                    self._delivered("sse", state, result)
                event = sse.encode_data(result.body, base64_mode=base64_mode)
                await self._write(
                    http,
                    response,
                    event + self._control(state, position, request, result.up_to_date, result.closed),
                )
                sent_control = True
                if result.closed:
                    break
                continue
            if state.closed:
                await self._write(http, response, self._control(state, position, request, True, True))
                break
            if not sent_control:
                await self._write(http, response, self._control(state, position, request, True, False))
                sent_control = True
            remaining = deadline - time.monotonic()
            if self.service.stopping:
                # A last control event tells the client where to resume on another server.
                await self._write(http, response, self._control(state, position, request, True, False))
                break
            if remaining <= 0:
                break
            reached_tail = True
            woke = await self._wait(state, position, min(remaining, self.config.sse_keepalive))
            if not woke and not self.service.stopping and deadline > time.monotonic():
                await self._write(http, response, sse.KEEP_ALIVE)

    def _delivered(self, mode: LiveMode, state: StreamState, result: ReadResult) -> None:
        """Data committed while the reader waited at the tail is handed over: for a KV change stream,
        observe how long after its newest commit (the watch lag). Catch-up reads are not measured:
        their age is the reader's absence, not the server's delay."""
        if is_change_stream(state.config.path):
            end = str(state.offset_at(result.end))
            self.metrics.kv.delivered(mode, result.body, end, self.service.clock_ms())

    async def _write(self, http: web.Request, response: web.StreamResponse, data: bytes) -> None:
        await write_live(http, response, data, self.budget)

    def _control(
        self, state: StreamState, position: int, request: ReadRequest, up_to_date: bool, closed: bool
    ) -> bytes:
        next_cursor = None if closed else self._cursor(state, position, request.cursor)
        payload = sse.control_payload(
            str(state.offset_at(position)), cursor=next_cursor, up_to_date=up_to_date, closed=closed
        )
        return sse.encode_control(payload)
