"""Live tails: `GET .../:name/tail` as SSE (default) or one long-poll (`?mode=long-poll`).

SSE: every message is one event whose `id` is its offset, so a browser EventSource resumes by
itself through `Last-Event-ID` (which takes precedence over `after`); `data` is the message
(a JSON value, text, or base64 as the Stream-Message-Format header says). A comment line is
sent while idle; the response ends with `event: closed` when the stream is closed, and ends
quietly at the SSE max age or on shutdown (clients reconnect). Woken by commits, never polling.

Long-poll answers like a read once data exists past `after`, 204 after the timeout, and at once
with `closed: true` when the stream is closed at that offset.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager

from aiohttp import web

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.handlers import cache_scope
from plugin_streams.origin.limits import LiveLimiter, live_connection
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.positions import resolve_position
from plugin_streams.origin.reads import read, wait_for_data
from plugin_streams.origin.rest.access import check
from plugin_streams.origin.rest.messages import MessageHandlers
from plugin_streams.origin.rest.pages import Page, page_of
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import caching, sse
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.slow_clients import SlowClient, WriteBudget, end_live, write_live
from plugin_streams.shared.auth import AccessPolicy, Right
from plugin_streams.shared.errors import BadRequest, NotFound, ProtocolError
from plugin_streams.shared.rest_pages import (
    DEFAULT_READ_LIMIT,
    MAX_READ_LIMIT,
    Encoding,
    encoding_of,
    parse_limit,
    requested_after,
    sse_closed,
    sse_data,
    sse_message,
    sse_retry,
)


def encode_page(state: StreamState, page: Page, encoding: Encoding) -> bytes:
    # A stored JSON value is compact, so one line; text may span lines (EventSource joins them).
    events = (
        sse_message(str(state.offset_at(end)), sse_data(payload, encoding))
        for end, payload in zip(page.ends, page.payloads, strict=True)
    )
    return "".join(events).encode()


class TailHandlers:
    def __init__(
        self,
        service: StreamService,
        config: OriginConfig,
        policy: AccessPolicy,
        limiter: LiveLimiter,
        metrics: OriginMetrics,
        messages: MessageHandlers,
    ) -> None:
        self.service = service
        self.config = config
        self.policy = policy
        self.limiter = limiter
        self.metrics = metrics
        self.messages = messages
        self.budget = WriteBudget(config.sse_client_buffer, config.sse_write_timeout)

    def _open(self, mode: str) -> AbstractContextManager[None]:
        return live_connection(self.limiter, self.metrics.live.labels(mode))

    async def _wait(self, state: StreamState, position: int, timeout: float) -> bool:
        if self.service.stopping:
            return False
        woke = await wait_for_data(state, position, timeout, lambda: self.service.stopping)
        return woke and not self.service.stopping

    async def tail(self, request: web.Request, name: str) -> web.StreamResponse:
        check(request, self.policy, Right.READ, name)
        mode = request.query.get("mode", "sse")
        if mode not in ("sse", "long-poll"):
            raise BadRequest("mode must be sse or long-poll")
        resume = request.headers.get(h.LAST_EVENT_ID)
        after = requested_after(resume if resume else request.query.get("after"))
        state = await self.messages.live_state(name)
        position = resolve_position(state, after)
        if mode == "long-poll":
            return await self.long_poll(request, state, position)
        return await self.sse(request, state, position)

    async def long_poll(self, request: web.Request, state: StreamState, position: int) -> web.Response:
        limit = parse_limit(request.query, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)
        if position >= state.tail and not state.closed:
            with self._open("rest_long_poll"), leaves_with_client(request):
                await self._wait(state, position, self.config.long_poll_timeout)
            if state.removed:
                raise NotFound("stream was deleted")
            self.service.touch(state, self.service.clock_ms())
        if position >= state.tail and not state.closed:
            headers = {h.STREAM_NEXT_OFFSET: str(state.offset_at(position)), h.CACHE_CONTROL: caching.NO_STORE}
            return web.Response(status=204, headers=headers)
        result = await read(self.service.store, state, position, self.config.chunk_size)
        page = await page_of(state, result, limit)
        up_to_date = result.up_to_date and not page.cut
        scope = cache_scope(request)
        if not page.ends:
            cache_control = caching.NO_STORE  # closed at this offset: nothing to keep
        elif not up_to_date:
            cache_control = caching.catch_up(scope, complete=True, explicit_offset=True)
        else:
            cache_control = caching.long_poll(scope)
        return self.messages.page_response(request, state, result, page, raw=False, cache_control=cache_control)

    async def sse(self, request: web.Request, state: StreamState, position: int) -> web.StreamResponse:
        encoding = encoding_of(state.config.content_type)
        response = web.StreamResponse(status=200)
        response.headers[h.CONTENT_TYPE] = h.SSE_CONTENT_TYPE
        response.headers[h.CACHE_CONTROL] = caching.SSE
        response.headers[h.X_ACCEL_BUFFERING] = "no"
        response.headers[h.STREAM_MESSAGE_FORMAT] = encoding.value
        # Where this tail starts, so a client that asked for `now` can resume from a real offset.
        response.headers[h.STREAM_START_OFFSET] = str(state.offset_at(position))
        with self._open("rest_sse"), leaves_with_client(request):
            # The first page comes before the status line: a position the stream cannot serve
            # (no longer retained) is answered with its own 4xx, not inside a 200.
            first = await self._page(state, position) if position < state.tail else None
            await response.prepare(request)
            try:
                await self._events(request, response, state, position, encoding, first)
                await end_live(request, response, self.budget)
            except SlowClient:
                self.metrics.rejected.labels("sse_slow_client").inc()
            except ConnectionResetError:
                pass  # the client went away
            except ProtocolError:
                # The status is sent: a later page that fails just ends the stream; the client
                # resumes from its last event's offset and is told why then.
                with contextlib.suppress(SlowClient, ConnectionResetError):
                    await end_live(request, response, self.budget)
        return response

    async def _page(self, state: StreamState, position: int) -> Page:
        result = await read(self.service.store, state, position, self.config.chunk_size)
        return await page_of(state, result, MAX_READ_LIMIT)

    async def _events(
        self,
        request: web.Request,
        response: web.StreamResponse,
        state: StreamState,
        position: int,
        encoding: Encoding,
        first: Page | None,
    ) -> None:
        config = self.config
        deadline = time.monotonic() + config.sse_max_age

        async def write(data: bytes) -> None:
            await write_live(request, response, data, self.budget)

        await write(sse_retry())
        while not state.removed:
            if first is not None or position < state.tail:
                page = first if first is not None else await self._page(state, position)
                first = None
                await write(encode_page(state, page, encoding))
                position = page.end
                continue
            if state.closed:
                await write(sse_closed(str(state.offset_at(position))))
                return
            remaining = deadline - time.monotonic()
            if self.service.stopping or remaining <= 0:
                return
            woke = await self._wait(state, position, min(remaining, config.sse_keepalive))
            if not woke and not self.service.stopping and deadline > time.monotonic():
                await write(sse.KEEP_ALIVE)
