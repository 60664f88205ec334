"""REST tails at the edge: `GET .../:name/tail`, SSE (default) or long-poll, on shared upstreams.

SSE: a client catches up with pages (edge.rest.reads: the cache, else one shared request) until
it stands where the stream's REST hub is, or where one of the hub's recent events starts, and
only then subscribes (edge.rest.hub); from there the hub writes into its socket. N clients of one
stream cost one upstream connection, and none of them sees a gap or a duplicate at the seam: hub
events are whole ranges of messages and a client joins only at their boundaries. Slow clients
are cut off by the delivery (they resume from their last event id), keep-alives come from the
hub, a response ends at `--sse-max-age` or with `event: closed`.

Long-poll: a cached page at the offset answers at once; otherwise every client at one offset
shares one upstream long-poll, and a recent answer from that offset is given to those who come
just after it returned, so a tailing crowd costs one upstream request per append. A client
behind its own writes through this edge gets only an answer reaching them (edge.writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

from aiohttp import web
from cachetools import TTLCache
from multidict import CIMultiDict

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.delivery import Subscriber
from plugin_streams.edge.fanout import SSEFanout
from plugin_streams.edge.long_poll_plan import STOPPING, FlightKey, may_answer
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.rest.hub import RestHub, refusal_of
from plugin_streams.edge.rest.paths import action_path
from plugin_streams.edge.rest.reads import PageRequest, RestReads, answer, page_request, signed_query, upstream_headers
from plugin_streams.edge.upstream import Reply, Upstream
from plugin_streams.shared import caching, jsonmode
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.aio.slow_clients import SlowClient, WriteBudget, end_live, write_live
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.offsets import NOW, parse_offset
from plugin_streams.shared.rest_pages import MAX_READ_LIMIT, sse_closed, sse_message, sse_retry

#: Bytes of recent long-poll answers kept for clients arriving just after a shared poll returned.
RECENT_POLL_BYTES: Final = 16 * 1024 * 1024
_HUB_KEY: Final = "rest\0"


class RestTails:
    def __init__(
        self,
        upstream: Upstream,
        reads: RestReads,
        fanout: SSEFanout,
        metrics: EdgeMetrics,
        config: EdgeConfig,
        policy: AccessPolicy,
    ) -> None:
        self.upstream = upstream
        self.reads = reads
        self.planner = reads.planner
        self.fanout = fanout
        self.metrics = metrics
        self.config = config
        self.policy = policy
        self.polls: SingleFlight[FlightKey, Reply] = SingleFlight("rest-long-poll")
        self._recent: TTLCache[FlightKey, Reply] = TTLCache(
            maxsize=RECENT_POLL_BYTES, ttl=caching.LONG_POLL_MAX_AGE, getsizeof=lambda r: len(r.body) + 512
        )

    async def tail(self, http: web.Request, name: str) -> web.StreamResponse:
        mode = http.query.get("mode", "sse")
        if mode not in ("sse", "long-poll"):
            raise BadRequest("mode must be sse or long-poll")
        resume = http.headers.get(h.LAST_EVENT_ID)  # an EventSource's resume point wins over `after`
        request = page_request(http, name, self.policy, after=resume or None)
        if mode == "long-poll":
            return await self.long_poll(http, request)
        return await self.sse(http, request)

    def shutdown(self) -> None:
        """Answer every waiting long-poll now, so clients move to another edge."""
        self.polls.settle_all(STOPPING)

    # -- long-poll ---------------------------------------------------------------------------

    async def long_poll(self, http: web.Request, request: PageRequest) -> web.Response:
        request = PageRequest(request.name, request.scope, request.after, request.limit, raw=False)
        cached = await self.reads.cached(request)
        if cached is not None:
            return answer(cached, http, request)
        offset = request.offset
        key = self.planner.flight_key(request.scope, f"rest-poll:{request.limit}:{request.after_text}", offset)
        need = self.planner.writes.needs(request.name, offset)
        recent = self._recent.get(key)
        if recent is not None and may_answer(recent, need):
            self.metrics.cache_hits.labels("recent_poll").inc()
            return answer(recent, http, request)
        work = self._poll_work(http, request, key)
        self.metrics.long_poll_waiters.inc()
        try:
            with leaves_with_client(http):
                reply = await self.polls.run(key, work)
                strict = self.planner.flight_key(request.scope, f"rest-poll:{request.limit}:{request.after_text}")
                if reply is not STOPPING and not may_answer(reply, need) and strict != key:
                    # Begun before this client's writes reached the origin: ask again, after them.
                    reply = await self.polls.run(strict, work)
        finally:
            self.metrics.long_poll_waiters.dec()
        if reply is STOPPING:
            return _stopping(request)
        return answer(reply, http, request)

    def _poll_work(self, http: web.Request, request: PageRequest, key: FlightKey) -> Callable[[], Awaitable[Reply]]:
        query = {"mode": "long-poll", "after": request.after_text, "limit": str(request.limit)}
        path_qs = action_path(request.name, "tail", query | signed_query(http.query))
        headers = upstream_headers(http, raw=False)
        timeout = self.config.long_poll_timeout + self.config.upstream_timeout

        async def work() -> Reply:
            self.metrics.upstream.labels("rest_long_poll").inc()
            reply = await self.upstream.request("GET", path_qs, headers, timeout=timeout)
            self.reads.store(request, reply)
            # Before any waiter wakes: a client arriving meanwhile finds the answer, not a
            # finished flight. Only answers that may be kept (an explicit offset, not no-store).
            cache_control = reply.headers.get(h.CACHE_CONTROL, caching.NO_STORE)
            if request.offset is not None and reply.status == 200 and caching.NO_STORE not in cache_control:
                self._recent[key] = reply
            return reply

        return work

    # -- SSE ---------------------------------------------------------------------------------

    def hub(self, http: web.Request, request: PageRequest) -> RestHub:
        scope = request.scope
        forwarded = {h.AUTHORIZATION: http.headers[h.AUTHORIZATION]} if h.AUTHORIZATION in http.headers else {}
        signed = signed_query(http.query)
        credentials = "&" + "&".join(f"{k}={v}" for k, v in signed.items()) if signed else ""
        path = action_path(request.name, "tail", {}).rstrip("?")

        def make(key: str) -> RestHub:
            config = self.config
            return RestHub(
                key,
                request.name,
                path,
                forwarded,
                self.upstream,
                self.metrics,
                config.sse_idle_close,
                self.fanout.release,
                credentials,
                config.sse_keepalive,
            )

        hub = self.fanout.join(_HUB_KEY + (scope.credential or scope.path), make)
        assert isinstance(hub, RestHub)
        return hub

    async def sse(self, http: web.Request, request: PageRequest) -> web.StreamResponse:
        hub = self.hub(http, request)
        try:
            async with asyncio.timeout(self.config.upstream_timeout):
                await hub.ready.wait()
        except TimeoutError:
            raise self.upstream.no_answer("sse", self.config.upstream_timeout) from None
        refused = refusal_of(hub)
        if refused is not None:
            return answer(refused, http, request)
        gauge = self.metrics.live_clients.labels("rest_sse")
        gauge.inc()
        try:
            with leaves_with_client(http):  # a client that leaves frees its place at once
                return await self._serve(http, request, hub)
        finally:
            gauge.dec()

    async def _serve(self, http: web.Request, request: PageRequest, hub: RestHub) -> web.StreamResponse:
        position = hub.position if request.after is NOW else request.after_text
        assert position is not None
        first: Reply | None = None
        start = position
        if not hub.can_take(position):
            # The first page comes before the status line: an offset the origin refuses (gone,
            # not a boundary, ...) is answered with the origin's own error.
            first = await self._page(http, request, position)
            if first.status != 200:
                return answer(first, http, request)
            start = first.headers.get(h.STREAM_START_OFFSET, position)
        response = web.StreamResponse(status=200)
        if http.version >= (1, 1):
            response.enable_chunked_encoding()  # `response.chunked` tells the hub to frame its writes
        response.headers[h.CONTENT_TYPE] = h.SSE_CONTENT_TYPE
        response.headers[h.CACHE_CONTROL] = caching.SSE
        response.headers[h.X_ACCEL_BUFFERING] = "no"
        response.headers[h.STREAM_MESSAGE_FORMAT] = hub.encoding
        response.headers[h.STREAM_START_OFFSET] = start
        await response.prepare(http)
        budget = WriteBudget(self.config.sse_client_buffer, self.config.sse_write_timeout)
        try:
            await write_live(http, response, sse_retry(), budget)
            await self._stream(http, response, request, hub, position, first, budget)
            await end_live(http, response, budget)
        except SlowClient:
            self.metrics.slow_disconnects.inc()
        except ConnectionResetError:
            pass  # the client went away
        return response

    async def _page(self, http: web.Request, request: PageRequest, position: str) -> Reply:
        after = parse_offset(position) if position != h.OFFSET_START else request.after
        page = PageRequest(request.name, request.scope, after, MAX_READ_LIMIT, raw=False)
        return await self.reads.page(http, page)

    async def _stream(
        self,
        http: web.Request,
        response: web.StreamResponse,
        request: PageRequest,
        hub: RestHub,
        position: str,
        first: Reply | None,
        budget: WriteBudget,
    ) -> None:
        """Catch up with pages until the hub can take the client, then let the hub write."""
        deadline = time.monotonic() + self.config.sse_max_age
        subscriber: Subscriber | None = None
        while subscriber is None:
            if self.fanout.stopping or time.monotonic() > deadline:
                return
            hub = await self._live_hub(http, request, hub)
            if first is None and hub.can_take(position):
                transport = http.transport
                if transport is None:
                    return
                subscriber = hub.subscribe(position, transport, self.config.sse_client_buffer, response.chunked)
                continue  # subscribed (the loop ends), or the hub moved on: try again
            if first is None and not hub.ended and hub.position is not None and position > hub.position:
                await hub.changed(1.0)  # the origin is ahead of the hub: let it catch up
                continue
            reply = first if first is not None else await self._page(http, request, position)
            first = None
            if reply.status != 200:
                return  # the status is sent: the client resumes from its last event and hears why then
            events, position, up_to_date, closed = await _events(reply.body)
            await write_live(http, response, events, budget)
            if closed:
                await write_live(http, response, sse_closed(position), budget)
                return
            if up_to_date and (hub.ended or (hub.position is not None and position > hub.position)):
                await hub.changed(1.0)
        try:
            await self.fanout.live(http, subscriber, deadline)
        finally:
            hub.unsubscribe(subscriber)

    async def _live_hub(self, http: web.Request, request: PageRequest, hub: RestHub) -> RestHub:
        """`hub`, or the stream's new hub if it idled out while this client was catching up."""
        if not hub.ended or hub.closed or hub.error is not None:
            return hub
        hub = self.hub(http, request)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.upstream_timeout):
                await hub.ready.wait()
        return hub


async def _events(body: bytes) -> tuple[bytes, str, bool, bool]:
    """A JSON page as SSE events: (events, next offset, up to date, closed). Large pages are
    parsed off the loop; a JSON value is re-serialised exactly as the origin stored it."""
    if len(body) <= jsonmode.INLINE_BYTES:
        return _page_events(body)
    return await asyncio.get_running_loop().run_in_executor(None, partial(_page_events, body))


def _page_events(body: bytes) -> tuple[bytes, str, bool, bool]:
    page: dict[str, Any] = json.loads(body)
    as_json = page["encoding"] == "json"
    events = "".join(
        sse_message(m["offset"], jsonmode.compact(m["data"]).decode() if as_json else m["data"])
        for m in page["messages"]
    )
    return events.encode(), page["next_offset"], page["up_to_date"], page["closed"]


def _stopping(request: PageRequest) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict({h.CACHE_CONTROL: caching.NO_STORE})
    if request.offset is not None:
        headers[h.STREAM_NEXT_OFFSET] = request.after_text
    return web.Response(status=204, headers=headers)
