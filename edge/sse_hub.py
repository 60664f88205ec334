"""One upstream live subscription per stream (and credential scope), shared by its SSE clients.

A Hub follows one live SSE response of the origin for one stream, keeps a short history of
recent events (whole ranges [start, end), so a client subscribes only at an event boundary), and
pushes each event to every subscriber as the same bytes, encoded once, through its delivery
(edge.delivery). edge.fanout (the protocol) and edge.rest.tails (the REST API) decide when a
client may subscribe.

The upstream connection, its reconnection, keep-alives, the history and the subscribers are the
same for every API; what a subclass says is how to follow the origin's SSE response and turn it
into events: `ProtocolHub` here (data + control events), `RestHub` (edge.rest.hub) for the REST
tail (one event per message, its id the message's offset).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from plugin_streams.edge.delivery import Delivery, Subscriber
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.upstream import Upstream
from plugin_streams.shared import cursor, sse
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.clock import wall_clock_ms
from plugin_streams.shared.errors import ProtocolError, Unavailable


class Hub(abc.ABC):
    """What every hub does; `_follow` is the subclass's: follow the origin from an offset."""

    def __init__(
        self,
        key: str,
        stream: str,
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
        self.stream = stream  # the stream's path (edge.fanout.drop ends its hubs)
        self.path = path  # what is asked of the origin, before the query
        self._headers = headers
        self._credentials_query = credentials_query  # a signed URL's parameters, if that is the credential
        self._upstream = upstream
        self._metrics = metrics
        self._idle_close = idle_close
        self._on_end = on_end
        self.position: str | None = None
        self.ready = asyncio.Event()
        self.error: ProtocolError | None = None  # why the hub ended before it could serve
        self.closed = False
        self.ended = False
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
                    self._metrics.upstream_errors.labels("sse").inc()
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

    #: The `kind` of the hub's upstream requests in metrics.
    kind = "sse"

    @abc.abstractmethod
    def _query(self, offset: str) -> str:
        """The query of the origin's live SSE from `offset` (the subclass's API)."""

    @abc.abstractmethod
    def _started(self, response: aiohttp.ClientResponse) -> None:
        """The origin answered 200: what its headers say, before the first event."""

    @abc.abstractmethod
    def _feed(self, events: list[sse.Event]) -> None:
        """Events that arrived together: publish what they say."""

    async def _follow(self, offset: str) -> None:
        """Follow the origin's SSE response from `offset` until it ends (or the hub closes)."""
        self._metrics.upstream.labels(self.kind).inc()
        query = self._query(offset) + self._credentials_query
        response = await self._upstream.open_stream(self.path + query, self._headers)
        try:
            if response.status != 200:
                raise await self._refused(response)
            self._started(response)
            parser = sse.Parser()
            async for chunk in response.content.iter_any():
                self._feed(parser.feed(chunk))
                if self.closed:
                    return
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if not isinstance(exc, ValueError):  # its origin went away: the next attempt asks another
                self._upstream.stream_broke(response, f"SSE response broke: {type(exc).__name__}")
            raise Unavailable(f"upstream SSE broke: {type(exc).__name__}") from exc
        finally:
            response.release()

    def _published(self, added: bool) -> None:
        """The hub moved (`added`: an event went out, so keep-alives wait); waiters wake."""
        if added:
            self._last_event = time.monotonic()
        self._wake()

    async def _refused(self, response: aiohttp.ClientResponse) -> ProtocolError:
        """What a non-200 answer to the hub's request means: the origin's refusal (the hub ends
        with it), or Unavailable (the hub tries again)."""
        text = (await response.text())[:200]
        if response.status not in (400, 401, 403, 404, 410):
            return Unavailable(text)
        error = ProtocolError(text.strip() or "upstream refused")
        error.status = response.status
        return error

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    # -- subscribers ------------------------------------------------------------------------

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


class ProtocolHub(Hub):
    """Follows the protocol's SSE (`?offset=&live=sse`): each data event and its control event
    become one hub event; controls are re-made here with the hub's own cursor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.base64 = False
        self.cursor = 0
        self._data: str | None = None  # a data event waiting for its control event
        super().__init__(*args, **kwargs)

    def _query(self, offset: str) -> str:
        return f"?{h.QUERY_OFFSET}={offset}&{h.QUERY_LIVE}={h.LIVE_SSE}"

    def _started(self, response: aiohttp.ClientResponse) -> None:
        self.base64 = response.headers.get(h.STREAM_SSE_DATA_ENCODING, "").lower() == "base64"
        self._data = None

    def _feed(self, events: list[sse.Event]) -> None:
        for event in events:  # each data event is followed by its control event (maybe in a later chunk)
            if event.event == h.SSE_EVENT_DATA:
                self._data = event.data
            elif event.event == h.SSE_EVENT_CONTROL:
                self._on_control(json.loads(event.data), self._data)
                self._data = None

    def _on_control(self, control: dict[str, object], data: str | None) -> None:
        next_offset = str(control[h.SSE_NEXT_OFFSET])
        closed = control.get(h.SSE_CLOSED) is True
        up_to_date = control.get(h.SSE_UP_TO_DATE) is True
        if self.position is None:
            self.position = next_offset
            self.ready.set()
        added = data is not None or closed or next_offset != self.position
        if added:
            wire = (sse.encode_data_text(data) if data is not None else b"") + self._control(
                next_offset, up_to_date or closed, closed
            )
            self.delivery.add(self.position, next_offset, wire, closed)
            self.position = next_offset
        self.closed = closed
        self._published(added)

    def _control(self, next_offset: str, up_to_date: bool, closed: bool) -> bytes:
        self.cursor = max(self.cursor, cursor.current_interval(wall_clock_ms()))
        payload = sse.control_payload(
            next_offset, cursor=None if closed else self.cursor, up_to_date=up_to_date, closed=closed
        )
        return sse.encode_control(payload)

    def raise_cursor(self, echoed: int | None) -> None:
        """Cursors never go backwards for anyone: the hub's cursor covers every client's."""
        self.cursor = max(self.cursor, cursor.next_cursor(wall_clock_ms(), echoed, self.path))
