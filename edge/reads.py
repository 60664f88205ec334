"""Catch-up and long-poll reads at the edge: cache first, then one shared upstream request.

- Catch-up at an explicit offset: answered from a cached immutable chunk (any byte inside it
  for byte streams), otherwise fetched once for all concurrent askers and cached if immutable.
- Long-poll: clients whose offset lies inside cached data are answered at once; all clients
  waiting at one offset share one upstream long-poll and are answered together when it
  returns. Each gets its own cursor under the spec's monotonic rule (shared.cursor), which is
  deterministic, so clients at the same place still share cache keys downstream.
- Everything else (`offset=-1`, `offset=now`, the tail) is coalesced but not stored: it can
  change at any moment, and the edge must show a client its own writes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from cachetools import TTLCache
from multidict import CIMultiDict
from yarl import URL

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.chunks import Chunk, ChunkKey, is_immutable
from plugin_streams.edge.coalesce import shared_headers
from plugin_streams.edge.joined import join
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.upstream import Reply, Upstream, end_to_end
from plugin_streams.edge.writes import WriteMarks, reaches
from plugin_streams.shared import caching, cursor
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.offsets import Offset, parse_offset
from plugin_streams.shared.parse import ReadRequest

RECENT_POLL_BYTES = 64 * 1024 * 1024
#: Most recent answers joined to give a reader behind this edge's writes an answer reaching them.
MAX_JOINED = 16
#: What waiting long-polls receive when the edge shuts down (never cached or sent upstream).
STOPPING = Reply(204, CIMultiDict(), b"")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def explicit(offset_text: str | None) -> Offset | None:
    if offset_text is None or offset_text in (h.OFFSET_START, h.OFFSET_NOW):
        return None
    return parse_offset(offset_text)


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
        self.catch_up_flights: SingleFlight[tuple[str, str, str], Reply] = SingleFlight("catch-up")
        self.long_poll_flights: SingleFlight[tuple[str, str, str], Reply] = SingleFlight("long-poll")
        self.writes = WriteMarks()  # per path: writes passed through, for read-your-writes
        self._stopped = False
        # Recent long-poll answers by (scope, offset): data from that offset never changes, so a
        # client arriving after the shared poll returned is answered at once (a prefix of what
        # is there now; it then polls from the answer's end) instead of asking the origin again.
        self._recent_polls: TTLCache[tuple[str, str, str], Reply] = TTLCache(
            maxsize=RECENT_POLL_BYTES, ttl=caching.LONG_POLL_MAX_AGE, getsizeof=lambda r: len(r.body) + 512
        )

    def _store(self, scope: ReadScope, offset: Offset | None, reply: Reply) -> None:
        cache_control = reply.headers.get(h.CACHE_CONTROL)
        if offset is None or reply.status != 200 or not is_immutable(cache_control):
            return
        assert cache_control is not None
        owner = scope.for_response(cache_control)
        end = _next_offset(reply)
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

    async def _fetch(self, headers: Mapping[str, str], scope: ReadScope, offset: Offset | None, path_qs: str) -> Reply:
        self.metrics.upstream.labels("catch_up").inc()
        # Shared by every caller of the flight: no one caller's conditionals (respond() applies each's).
        reply = await self.upstream.request("GET", path_qs, shared_headers(headers))
        self._store(scope, offset, reply)
        return reply

    def shutdown(self) -> None:
        """Answer every waiting long-poll now (204), so clients move to another edge."""
        self._stopped = True
        self.long_poll_flights.settle_all(STOPPING)

    def wrote(self, path: str, end: Offset | None = None) -> None:
        """A write to `path` passed through (an append ending at `end`; None: any other write):
        reads issued from now on share only flights that cannot predate it (edge.writes)."""
        self.writes.wrote(path, end)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def flight_key(self, scope: ReadScope, what: str, offset: Offset | None = None) -> tuple[str, str, str]:
        """The key of shared reads of `what` begun since the last write through this edge; for a
        long-poll from an `offset` no append since the last barrier passed, since that barrier
        (edge.writes)."""
        return (scope.credential or scope.path, scope.path, f"{self.writes.epoch(scope.path, offset)}|{what}")

    async def catch_up(self, http: web.Request, scope: ReadScope, request: ReadRequest) -> web.Response:
        offset = explicit(http.query.get(h.QUERY_OFFSET))
        chunk = await self.cached(scope, offset)
        if chunk is not None and offset is not None:
            return _chunk_response(chunk, offset.position, http, scope)
        key = self.flight_key(scope, http.query_string)
        try:
            reply = await self.catch_up_flights.run(
                key, lambda: self._fetch(http.headers, scope, offset, http.raw_path)
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
        offset = explicit(offset_text)
        chunk = await self.cached(scope, offset)
        if chunk is not None and offset is not None:
            body, headers = chunk.answer(offset.position)
            return Reply(200, headers, body)
        query = {k: v for k, v in http.rel_url.query.items() if k not in (h.QUERY_CURSOR, h.QUERY_LIVE)}
        query[h.QUERY_OFFSET] = offset_text
        path_qs = http.rel_url.with_query(query).raw_path_qs
        key = self.flight_key(scope, f"offset={offset_text}")
        return await self.catch_up_flights.run(key, lambda: self._fetch(http.headers, scope, offset, path_qs))

    async def long_poll(self, http: web.Request, scope: ReadScope, request: ReadRequest) -> web.Response:
        offset_text = http.query.get(h.QUERY_OFFSET, "")
        offset = explicit(offset_text)
        chunk = await self.cached(scope, offset)
        if chunk is not None and offset is not None:
            body, headers = chunk.answer(offset.position)
            headers[h.CACHE_CONTROL] = chunk.cache_control
            headers[h.STREAM_CURSOR] = str(self._cursor(offset_text, request.cursor))
            _cap_for_signature(headers, scope)
            return web.Response(status=200, body=body, headers=headers)
        key, need, recent = self.shared_poll(scope, offset_text, offset)  # writes through this edge
        if recent is not None:
            self.metrics.cache_hits.labels("recent_poll").inc()
            return self._long_poll_answer(recent, offset_text, request.cursor, scope)
        upstream_poll = self.poll_work(http.headers, scope, offset, http.rel_url, key)
        if self._stopped:
            return _stopping_answer(offset_text, self._cursor(offset_text, request.cursor))
        self.metrics.long_poll_waiters.inc()
        try:
            # (One shared future per offset, settled early by shutdown(): no per-waiter callbacks
            # on a shared "stopping" future, which would cost O(waiters) each to remove.) A client
            # that leaves stops waiting at once; the shared poll goes on for the others.
            with leaves_with_client(http):
                reply = await self.long_poll_flights.run(key, upstream_poll)
                strict = self.flight_key(scope, offset_text)
                if key != strict and not may_answer(reply, need):
                    # A flight that may have begun before this client's writes reached the origin (an
                    # answer short of them; 400: beyond the end) says nothing of them: ask again, after.
                    reply = await self.long_poll_flights.run(strict, upstream_poll)
        finally:
            self.metrics.long_poll_waiters.dec()
        if reply is STOPPING:  # shutting down: answer now, so the client resumes elsewhere
            return _stopping_answer(offset_text, self._cursor(offset_text, request.cursor))
        return self._long_poll_answer(reply, offset_text, request.cursor, scope)

    def poll_work(
        self,
        headers: Mapping[str, str],
        scope: ReadScope,
        offset: Offset | None,
        rel_url: URL,
        key: tuple[str, str, str],
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
            self.remember_poll(key, offset, reply)
            return reply

        return upstream_poll

    def shared_poll(
        self, scope: ReadScope, offset_text: str, offset: Offset | None
    ) -> tuple[tuple[str, str, str], Offset | None, Reply | None]:
        """For a long-poll from `offset_text`: the flight it joins, where an answer must reach for
        it (edge.writes: None, any), and a recent answer it may be given now."""
        key = self.flight_key(scope, offset_text, offset)
        need = self.writes.needs(scope.path, offset)
        recent = self._recent_polls.get(key)
        if recent is not None and need is not None and not may_answer(recent, need):
            recent = self._joined_recent(key, offset_text, recent, need)
        return key, need, recent

    def _joined_recent(self, key: tuple[str, str, str], offset_text: str, first: Reply, need: Offset) -> Reply | None:
        """Recent answers from `offset_text` on (each from where the one before ended), joined
        until they reach `need`; None if they don't yet. Remembered: readers lagging together
        all get it, and none of them asks the origin."""
        epoch = key[2].partition("|")[0]
        answers = [first]
        while not may_answer(answers[-1], need):
            after = self._recent_polls.get((key[0], key[1], f"{epoch}|{answers[-1].headers[h.STREAM_NEXT_OFFSET]}"))
            if after is None or len(answers) == MAX_JOINED:
                return None
            answers.append(after)
        joined = self._recent_polls[key] = join(offset_text, answers)
        return joined

    def remember_poll(self, key: tuple[str, str, str], offset: Offset | None, reply: Reply) -> None:
        # Only explicit offsets: data after one never changes (a `-1` answer may, and is short-lived).
        # Not an answer the origin let live shorter than the memory keeps it (a TTL or expiring
        # stream, a signature): a copy outlives no max-age, and such reads must reach the origin.
        cache_control = reply.headers.get(h.CACHE_CONTROL, "no-store")
        if (
            offset is not None
            and reply.status == 200
            and "no-store" not in cache_control
            and (caching.max_age(cache_control) or 0) >= caching.LONG_POLL_MAX_AGE
        ):
            self._recent_polls[key] = reply

    def _long_poll_answer(self, reply: Reply, offset_text: str, echoed: int | None, scope: ReadScope) -> web.Response:
        headers = self.long_poll_headers(reply, offset_text, echoed, scope)
        # Errors keep the origin's reason text (a 400's "offset is beyond the end", a 404...).
        body = reply.body if reply.status not in (204, 304) else None
        return web.Response(status=reply.status, body=body, headers=headers)

    def long_poll_headers(
        self, reply: Reply, offset_text: str, echoed: int | None, scope: ReadScope
    ) -> CIMultiDict[str]:
        """A shared poll's answer for one client: the origin's headers with that client's cursor."""
        headers = end_to_end(reply.headers)
        if h.STREAM_CURSOR in headers:
            headers[h.STREAM_CURSOR] = str(self._cursor(offset_text, echoed))
        _cap_for_signature(headers, scope)
        return headers

    async def _poll(self, headers: Mapping[str, str], scope: ReadScope, offset: Offset | None, path_qs: str) -> Reply:
        self.metrics.upstream.labels("long_poll").inc()
        reply = await self.upstream.request("GET", path_qs, shared_headers(headers), timeout=self.long_poll_timeout + 5)
        self._store(scope, offset, reply)
        return reply

    def cursor_for(self, offset_text: str, echoed: int | None) -> int:
        return self._cursor(offset_text, echoed)

    @staticmethod
    def _cursor(offset_text: str, echoed: int | None) -> int:
        return cursor.next_cursor(now_ms(), echoed, offset_text)


def may_answer(reply: Reply, need: Offset | None) -> bool:
    """Whether a shared long-poll answer may be given to a reader that `needs` this (edge.writes)."""
    if reply.status == 200:
        return need is None or reaches(_next_offset(reply), need)
    return reply.status == 204 and need is None


def _next_offset(reply: Reply) -> Offset:
    return parse_offset(reply.headers[h.STREAM_NEXT_OFFSET])


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
