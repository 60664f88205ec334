"""Catch-up and long-poll reads at the edge: cache first, then one shared upstream request.

- Catch-up at an explicit offset: answered from a cached immutable chunk (any byte inside it
  for byte streams), otherwise fetched once for all concurrent askers and cached if immutable.
- Long-poll: what to do is decided by edge.long_poll_plan (also for the fast lane); here it is
  done. Clients whose offset lies inside cached data are answered at once; all clients
  waiting at one offset share one upstream long-poll and are answered together when it
  returns. Each gets its own cursor under the spec's monotonic rule (shared.cursor), which is
  deterministic, so clients at the same place still share cache keys downstream.
- A read from the start (`offset=-1`) that stops before the tail is kept for the second the
  origin allows (edge.start_pages): every walk of a stream begins there.
- Everything else (`offset=now`, the tail) is coalesced but not stored: it can change at any
  moment, and the edge must show a client its own writes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.chunks import Chunk, ChunkKey, is_immutable, start_scope
from plugin_streams.edge.coalesce import shared_headers
from plugin_streams.edge.long_poll_plan import (
    STOPPING,
    AfterFlight,
    FlightKey,
    FromCache,
    FromRecent,
    LongPollPlanner,
    PollRequest,
    Stopping,
    next_offset,
)
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.start_pages import start_page
from plugin_streams.edge.upstream import Reply, Upstream, end_to_end
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.clock import wall_clock_ms
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.offsets import Offset, parse_offset
from plugin_streams.shared.parse import ReadRequest


def explicit(offset_text: str | None) -> Offset | None:
    if offset_text is None or offset_text in (h.OFFSET_START, h.OFFSET_NOW):
        return None
    return parse_offset(offset_text)


def from_start(offset_text: str | None) -> bool:
    """Whether a catch-up read with this `offset` (None: none given) reads from the start."""
    return offset_text is None or offset_text == h.OFFSET_START


def respond(reply: Reply, request: web.Request) -> web.Response:
    headers = end_to_end(reply.headers)
    etag = headers.get(h.ETAG)
    if reply.status == 200 and etag and caching.if_none_match(request.headers.get(h.IF_NONE_MATCH), etag):
        return web.Response(status=304, headers={h.ETAG: etag, h.CACHE_CONTROL: headers.get(h.CACHE_CONTROL, "")})
    return web.Response(status=reply.status, body=reply.body if reply.status != 204 else None, headers=headers)


class EdgeReads:
    def __init__(self, upstream: Upstream, cache: ChunkCache, metrics: EdgeMetrics, long_poll_timeout: float) -> None:
        self.upstream = upstream
        self.cache = cache
        self.metrics = metrics
        self.long_poll_timeout = long_poll_timeout
        self.catch_up_flights: SingleFlight[FlightKey, Reply] = SingleFlight("catch-up")
        self.long_poll_flights: SingleFlight[FlightKey, Reply] = SingleFlight("long-poll")
        # The writes through this edge and the recent long-poll answers; decides every long-poll.
        self.planner = LongPollPlanner(wall_clock_ms)
        self._stopped = False

    def _store(self, scope: ReadScope, offset: Offset | None, reply: Reply) -> None:
        cache_control = reply.headers.get(h.CACHE_CONTROL)
        if offset is None or reply.status != 200 or not is_immutable(cache_control):
            return
        assert cache_control is not None
        owner = scope.for_response(cache_control)
        end = next_offset(reply)
        if owner is None or end.generation != offset.generation:
            return
        chunk = Chunk.make(
            ChunkKey(owner, offset.generation, offset.position),
            end.position,
            reply.body,
            reply.headers.get(h.CONTENT_TYPE, h.DEFAULT_CONTENT_TYPE),
            cache_control,
            reply.headers.get(h.SURROGATE_KEY),
        )
        self.cache.put(chunk)

    def _store_start(self, scope: ReadScope, reply: Reply) -> None:
        owner = scope.for_response(reply.headers.get(h.CACHE_CONTROL, ""))
        chunk = start_page(owner, reply) if owner is not None else None
        if chunk is not None:
            self.cache.put_start(chunk)

    def cached_start(self, scope: ReadScope) -> Chunk | None:
        """The kept answer to a read from the start (edge.start_pages) this client may see, if any."""
        for owner in (scope.public, scope.credential):
            if owner is None or (owner == scope.public and scope.signed):
                continue
            chunk = self.cache.start_page(start_scope(owner))
            if chunk is not None:
                self.cache.served(chunk, "memory")
                self.metrics.cache_hits.labels("memory").inc()
                return chunk
        return None

    async def cached(self, scope: ReadScope, offset: Offset | None, *, unverified: bool = False) -> Chunk | None:
        if offset is None:
            return None
        for owner in (scope.public, scope.credential):
            if owner is None or (owner == scope.public and scope.signed):
                continue
            found = await self.cache.find(owner, offset.generation, offset.position, unverified=unverified)
            if found is not None:
                self.metrics.cache_hits.labels(found[1]).inc()
                return found[0]
        self.metrics.cache_misses.inc()
        return None

    async def _fetch(
        self, headers: Mapping[str, str], scope: ReadScope, offset: Offset | None, path_qs: str, *, start: bool
    ) -> Reply:
        """The origin's answer to a catch-up read from `offset` (`start`: from the start)."""
        self.metrics.upstream.labels("catch_up").inc()
        # Shared by every caller of the flight: no one caller's conditionals (respond() applies each's).
        reply = await self.upstream.request("GET", path_qs, shared_headers(headers))
        if start:
            self._store_start(scope, reply)
        else:
            self._store(scope, offset, reply)
        return reply

    def catch_up_work(
        self, headers: Mapping[str, str], scope: ReadScope, offset: Offset | None, path_qs: str, *, start: bool
    ) -> Callable[[], Awaitable[Reply]]:
        """The upstream read a catch-up flight runs for a client asking `path_qs` (edge.parked_reads)."""
        return lambda: self._fetch(headers, scope, offset, path_qs, start=start)

    def shutdown(self) -> None:
        """Answer every waiting long-poll now (204), so clients move to another edge."""
        self._stopped = True
        self.long_poll_flights.settle_all(STOPPING)

    def wrote(self, path: str, end: Offset | None = None) -> None:
        """A write to `path` passed through (an append ending at `end`; None: any other write):
        reads issued from now on share only flights that cannot predate it (edge.writes)."""
        self.planner.wrote(path, end)

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def catch_up(self, http: web.Request, scope: ReadScope, request: ReadRequest) -> web.Response:
        offset_text = http.query.get(h.QUERY_OFFSET)
        start = from_start(offset_text)
        if start:
            page = self.cached_start(scope)
            if page is not None:
                return _chunk_response(page, page.key.start, http, scope)
        offset = explicit(offset_text)
        chunk = await self.cached(scope, offset)
        if chunk is not None and offset is not None:
            return _chunk_response(chunk, offset.position, http, scope)
        key = self.planner.flight_key(scope, http.query_string)
        try:
            reply = await self.catch_up_flights.run(
                key, lambda: self._fetch(http.headers, scope, offset, http.raw_path, start=start)
            )
        except Unavailable:
            # The origin cannot be asked whether the stream still exists: a copy within its
            # max-age is served anyway (edge.freshness), as no answer of the origin contradicts it.
            chunk = await self.cached(scope, offset, unverified=True)
            if chunk is None or offset is None:
                raise
            return _chunk_response(chunk, offset.position, http, scope)
        return respond(reply, http)

    async def read_at(self, http: web.Request, scope: ReadScope, offset_text: str) -> Reply:
        """A catch-up read from `offset_text` as a value (used by SSE catch-up), cache first."""
        start = from_start(offset_text)
        offset = explicit(offset_text)
        chunk = self.cached_start(scope) if start else await self.cached(scope, offset)
        if chunk is not None:
            body, headers = chunk.answer(chunk.key.start if offset is None else offset.position)
            return Reply(200, headers, body)
        query = {k: v for k, v in http.rel_url.query.items() if k not in (h.QUERY_CURSOR, h.QUERY_LIVE)}
        query[h.QUERY_OFFSET] = offset_text
        path_qs = http.rel_url.with_query(query).raw_path_qs
        key = self.planner.flight_key(scope, f"offset={offset_text}")
        return await self.catch_up_flights.run(
            key, lambda: self._fetch(http.headers, scope, offset, path_qs, start=start)
        )

    async def long_poll(self, http: web.Request, scope: ReadScope, request: ReadRequest) -> web.Response:
        offset_text = http.query.get(h.QUERY_OFFSET, "")
        poll = PollRequest(scope, explicit(offset_text), offset_text, request.cursor)
        flights = self.long_poll_flights
        chunk = await self.cached(scope, poll.offset)
        decision = self.planner.plan(poll, cached=chunk, stopped=self._stopped, in_flight=flights.waiting)
        if isinstance(decision, FromCache):
            return self._cached_poll_answer(decision, poll)
        if isinstance(decision, FromRecent):
            self.metrics.cache_hits.labels("recent_poll").inc()
            return self._long_poll_answer(decision.reply, poll)
        if isinstance(decision, Stopping):
            return _stopping_answer(offset_text, self.planner.cursor(poll))
        flight = decision
        upstream_poll = self.poll_work(http.headers, scope, poll.offset, http.rel_url, flight.key)
        self.metrics.long_poll_waiters.inc()
        try:
            # (One shared future per offset, settled early by shutdown(): no per-waiter callbacks
            # on a shared "stopping" future, which would cost O(waiters) each to remove.) A client
            # that leaves stops waiting at once; the shared poll goes on for the others.
            with leaves_with_client(http):
                reply = await flights.run(flight.key, upstream_poll)
                after = self.planner.after(flight, reply)
                if after is AfterFlight.ASK_AGAIN:
                    flight = self.planner.ask_again(flight, flights.waiting)
                    reply = await flights.run(flight.key, upstream_poll)
                    after = self.planner.after(flight, reply)
        finally:
            self.metrics.long_poll_waiters.dec()
        if after is AfterFlight.STOPPING:  # shutting down: answer now, so the client resumes elsewhere
            return _stopping_answer(offset_text, self.planner.cursor(poll))
        return self._long_poll_answer(reply, poll)

    def _cached_poll_answer(self, cached: FromCache, poll: PollRequest) -> web.Response:
        body, headers = cached.chunk.answer(cached.position)
        headers[h.CACHE_CONTROL] = cached.chunk.cache_control
        headers[h.STREAM_CURSOR] = str(self.planner.cursor(poll))
        _cap_for_signature(headers, poll.scope)
        return web.Response(status=200, body=body, headers=headers)

    def poll_work(
        self,
        headers: Mapping[str, str],
        scope: ReadScope,
        offset: Offset | None,
        rel_url: URL,
        key: FlightKey,
    ) -> Callable[[], Awaitable[Reply]]:
        """The upstream long-poll a flight runs for a client asking `rel_url`; its answer is
        remembered under `key` (the shared key, also for a retry under a stricter one)."""
        # Cursors are the edge's own (per client); everything else goes upstream as sent.
        query = {k: v for k, v in rel_url.query.items() if k != h.QUERY_CURSOR}
        path_qs = rel_url.with_query(query).raw_path_qs

        async def upstream_poll() -> Reply:
            reply = await self._poll(headers, scope, offset, path_qs)
            # Before any waiter wakes: a reader arriving meanwhile finds the answer, not a
            # finished flight (uvloop may run its request before the waiters' callbacks).
            self.planner.remember(key, offset, reply)
            return reply

        return upstream_poll

    def _long_poll_answer(self, reply: Reply, poll: PollRequest) -> web.Response:
        headers = self.long_poll_headers(reply, poll)
        # Errors keep the origin's reason text (a 400's "offset is beyond the end", a 404...).
        body = reply.body if reply.status not in (204, 304) else None
        return web.Response(status=reply.status, body=body, headers=headers)

    def long_poll_headers(self, reply: Reply, poll: PollRequest) -> CIMultiDict[str]:
        """A shared poll's answer for one client: the origin's headers with that client's cursor."""
        headers = end_to_end(reply.headers)
        if h.STREAM_CURSOR in headers:
            headers[h.STREAM_CURSOR] = str(self.planner.cursor(poll))
        _cap_for_signature(headers, poll.scope)
        return headers

    async def _poll(self, headers: Mapping[str, str], scope: ReadScope, offset: Offset | None, path_qs: str) -> Reply:
        self.metrics.upstream.labels("long_poll").inc()
        reply = await self.upstream.request("GET", path_qs, shared_headers(headers), timeout=self.long_poll_timeout + 5)
        self._store(scope, offset, reply)
        return reply


def _cap_for_signature(headers: CIMultiDict[str], scope: ReadScope) -> None:
    """A copy served to a signed URL must not be cached past that URL's own expiry."""
    if scope.signed_until is not None and h.CACHE_CONTROL in headers:
        remaining = max(0, scope.signed_until - int(time.time()))
        headers[h.CACHE_CONTROL] = caching.cap_max_age(headers[h.CACHE_CONTROL], remaining)


def _stopping_answer(offset_text: str, cursor_value: int) -> web.Response:
    headers = {
        h.STREAM_NEXT_OFFSET: offset_text,
        h.STREAM_UP_TO_DATE: "true",
        h.STREAM_CURSOR: str(cursor_value),
        h.CACHE_CONTROL: caching.NO_STORE,
    }
    return web.Response(status=204, headers=headers)


def chunk_answer(chunk: Chunk, position: int, scope: ReadScope) -> tuple[bytes, CIMultiDict[str]]:
    body, headers = chunk.answer(position)
    _cap_for_signature(headers, scope)
    return body, headers


def _chunk_response(chunk: Chunk, position: int, http: web.Request, scope: ReadScope) -> web.Response:
    body, headers = chunk_answer(chunk, position, scope)
    if caching.if_none_match(http.headers.get(h.IF_NONE_MATCH), headers[h.ETAG]):
        return web.Response(status=304, headers={h.ETAG: headers[h.ETAG], h.CACHE_CONTROL: chunk.cache_control})
    return web.Response(status=200, body=body, headers=CIMultiDict(headers))
