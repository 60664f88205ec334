"""The edge's fast lane: cache hits and shared long-poll answers written as rendered bytes.

Only plain requests take the lane: an anonymous HTTP/1.1 keep-alive GET of a stream, with no
If-None-Match, Authorization or signature, whose path needs no decoding. For those the answer
depends on the target alone, so each target is parsed once (with the same `shared` rules the
handlers use) and remembered. Then:
- a catch-up read from the start of a chunk in the memory cache, or from the start of the
  stream while its start page is kept (edge.start_pages), gets the chunk's rendered head and the
  cached body, with no copy; one no tier can answer (the tail, mostly) is parked on the shared
  upstream read and answered with the other readers of it (edge.parked_reads);
- a long-poll is decided as the handlers decide it (edge.long_poll_plan): one whose answer is
  already known (a recent shared poll) gets it at once; one that joins or starts a shared poll
  is parked on the connection, and when the poll returns every parked client is answered in one
  pass, the answer rendered once per cursor group. A parked
  client whose connection is lost stops waiting at once; a shared poll nobody waits for any more
  (parked here or in a handler) is cancelled, freeing its live slot at the origin.
Everything else (misses, other tiers, errors, shutdown, policies, regions) is declined and goes
to the ordinary handlers, which also produce any error response; metrics count both alike.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

from aiohttp.http import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from cachetools import LRUCache

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.chunks import Chunk, ChunkKey, start_scope
from plugin_streams.edge.long_poll_plan import (
    STOPPING,
    AfterFlight,
    Flight,
    FlightKey,
    FromRecent,
    JoinFlight,
    PollRequest,
    StartFlight,
)
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.parked_reads import ParkedReads
from plugin_streams.edge.reads import EdgeReads, chunk_answer, explicit, from_start
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import headers as h
from plugin_streams.shared import parse
from plugin_streams.shared.aio.fast_lane import FastConnection
from plugin_streams.shared.aio.rendered import Rendered
from plugin_streams.shared.auth import SIGNATURE_PARAM, AccessPolicy, Right, authorize
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.offsets import Offset
from plugin_streams.shared.paths import STREAM_PREFIX, validate_path

#: Request headers that change the answer (scope, 304): such requests go the ordinary way.
NOT_PLAIN: Final = (h.AUTHORIZATION, h.IF_NONE_MATCH)
MAX_ROUTES: Final = 16_384  # remembered targets (a few hundred bytes each)
_ANSWERED: Final = object()  # what a group gives for a client no longer in it


@dataclass(frozen=True, slots=True)
class CatchUp:
    scope: ReadScope
    offset: Offset


@dataclass(frozen=True, slots=True)
class FromStart:
    """A catch-up read from the start (`offset=-1`, or none), answered by a start page."""

    scope: ReadScope


Route = CatchUp | FromStart | PollRequest | None  # None: not for the lane (a PollRequest: a long-poll)


class _Parked:
    """Clients parked on one shared long-poll (each one of its waiters), grouped by the answer
    they will get."""

    __slots__ = ("future", "groups", "key")

    def __init__(self, key: FlightKey, future: asyncio.Future[Reply]) -> None:
        self.key = key
        self.future = future
        # Per client: its connection and its flight (which says where the answer must reach,
        # edge.writes), or None for a client any answer will do; one that leaves is taken out in
        # O(1), however many wait with it.
        self.groups: dict[PollRequest, dict[FastConnection, Flight | None]] = {}


class EdgeLane:
    """The edge app's lane: declines everything until the edge is ready, or if reads go elsewhere."""

    def __init__(self) -> None:
        self.reads: FastReads | None = None

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        fast = self.reads
        return fast is not None and fast.take(message, conn)


class FastReads:
    def __init__(self, reads: EdgeReads, cache: ChunkCache, metrics: EdgeMetrics, policy: AccessPolicy) -> None:
        self.reads = reads
        self.policy = policy
        self.cache = cache
        self.metrics = metrics
        self.enabled = True
        self._routes: LRUCache[str, Route] = LRUCache(MAX_ROUTES)
        self._parked: dict[FlightKey, _Parked] = {}
        self.parked = ParkedReads(reads, metrics)  # catch-up reads the cache cannot answer
        # Per chunk start: (the copy's stored time, its Age, the head naming both).
        self._heads: LRUCache[tuple[ChunkKey, int], tuple[float, int, Rendered]] = LRUCache(MAX_ROUTES)
        self._recent_heads: LRUCache[PollRequest, tuple[Reply, int, Rendered]] = LRUCache(MAX_ROUTES)
        # labels() costs a lock and a lookup: keep the few children the lane uses.
        self._memory_hits = metrics.cache_hits.labels("memory")
        self._recent_hits = metrics.cache_hits.labels("recent_poll")
        self._lane_catch_up = metrics.fast_lane.labels("catch_up")
        self._lane_long_poll = metrics.fast_lane.labels("long_poll")

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        if not self.enabled or message.method != "GET" or message.version != HttpVersion11 or message.should_close:
            return False
        headers = message.headers
        for name in NOT_PLAIN:
            if name in headers:
                return False
        target = message.path
        route = self._routes.get(target, False)
        if route is False:
            route = self._routes[target] = _route(message, self.policy)
        if route is None:
            return False
        if type(route) is CatchUp:
            return self._catch_up(route, message, conn)
        if type(route) is FromStart:
            return self._from_start(route, message, conn)
        return self._long_poll(route, message, conn)  # type: ignore[arg-type]

    # -- catch-up --------------------------------------------------------------------------

    def _catch_up(self, route: CatchUp, message: RawRequestMessage, conn: FastConnection) -> bool:
        offset = route.offset
        chunk = self.cache.in_memory(route.scope.path, offset.generation, offset.position)  # fresh only
        if chunk is not None and offset.position == chunk.key.start:
            self._send_whole(chunk, route.scope, conn)
            return True
        if chunk is not None or self.cache.may_have(route.scope.path, offset.generation, offset.position):
            return False  # a slice, or another tier: the handlers do it
        self.metrics.cache_misses.inc()
        return self.parked.park(message, conn, route.scope, offset, start=False)  # (the tail, mostly)

    def _from_start(self, route: FromStart, message: RawRequestMessage, conn: FastConnection) -> bool:
        chunk = self.cache.start_page(start_scope(route.scope.public))  # fresh only
        if chunk is None:  # not kept (or no longer): asked of the origin, with whoever asks too
            return self.parked.park(message, conn, route.scope, None, start=True)
        self._send_whole(chunk, route.scope, conn)
        return True

    def _send_whole(self, chunk: Chunk, scope: ReadScope, conn: FastConnection) -> None:
        """Answer with all of `chunk`: its rendered head, then its body as cached (one write, no copy)."""
        # The head names the copy's Age (whole seconds): rendered again once a second at most.
        age = chunk.age(time.time())
        start = chunk.key.start
        known = self._heads.get((chunk.key, start))
        if known is None or known[0] != chunk.stored or known[1] != age:
            body, headers = chunk_answer(chunk, start, scope)
            known = self._heads[(chunk.key, start)] = (chunk.stored, age, Rendered(200, headers, len(body)))
        rendered = known[2]
        self._memory_hits.inc()
        self.cache.served(chunk, "memory")
        conn.send(rendered.head(), chunk.body)  # counted and logged by the connection's observer
        self._lane_catch_up.inc()

    # -- long-poll -------------------------------------------------------------------------

    def _long_poll(self, route: PollRequest, message: RawRequestMessage, conn: FastConnection) -> bool:
        reads = self.reads
        offset = route.offset
        if offset is None or reads.stopped or self.cache.may_have(route.scope.path, offset.generation, offset.position):
            return False
        flights = reads.long_poll_flights
        decision = reads.planner.plan(route, cached=None, stopped=False, in_flight=flights.waiting)
        if type(decision) is FromRecent:
            recent = decision.reply
            rendered = self._render_recent(recent, route)
            if rendered is None:
                return False
            self._recent_hits.inc()
            conn.send(rendered.head(), recent.body if recent.status == 200 else b"")
            self._lane_long_poll.inc()
            return True
        # Each parked client is a waiter of the flight until it is answered or its connection is
        # lost: the last to leave (with the handlers' waiters) cancels the upstream poll.
        if type(decision) is JoinFlight:
            future = flights.join_pending(decision.key)
        elif type(decision) is StartFlight:
            # The first client here starts the shared poll (as the handler would, with its request).
            work = reads.poll_work(message.headers, route.scope, offset, message.url, decision.key)
            future = flights.join(decision.key, work)
        else:
            return False  # (nothing else is planned without cached data, before shutdown)
        if future is None:
            return False  # (never: the flight planned as in progress is, as nothing ran since)
        key = decision.key
        parked = self._parked.get(key)
        if parked is None or parked.future is not future:  # (a flight everyone left: a new one)
            parked = self._parked[key] = _Parked(key, future)
            future.add_done_callback(lambda _: self._answer_parked(key, parked))
        group = parked.groups.get(route)
        if group is None:
            group = parked.groups[route] = {}
        # What each parked client holds is walked by every run of the cyclic GC, thousands of
        # clients at a time: a client that needs no particular answer (the usual case) keeps no
        # decision, and none keeps its own FlightKey (a tuple subclass, which the GC never
        # untracks); together they cost the fan-out ~60 ms of delivery latency at the median.
        group[conn] = decision if decision.need is not None else None
        conn.park(message, lambda: self._left(parked, route, conn))
        self.metrics.long_poll_waiters.inc()
        return True

    def _left(self, parked: _Parked, route: PollRequest, conn: FastConnection) -> None:
        """A parked client's connection was lost: it waits no more, nor keeps the shared poll going."""
        group = parked.groups.get(route)
        if group is None or group.pop(conn, _ANSWERED) is _ANSWERED:
            return  # its answer was on the way (the connection closing already)
        if not group:
            del parked.groups[route]
        self.metrics.long_poll_waiters.dec()
        self.reads.long_poll_flights.leave(parked.key, parked.future)

    def _answer_parked(self, key: FlightKey, parked: _Parked) -> None:
        if self._parked.get(key) is parked:
            del self._parked[key]
        future = parked.future
        reply = None if future.cancelled() or future.exception() is not None else future.result()
        groups, parked.groups = parked.groups, {}
        planner = self.reads.planner
        for route, clients in groups.items():
            self.metrics.long_poll_waiters.dec(len(clients))
            rendered = self._render(reply, route) if reply is not None and reply is not STOPPING else None
            if rendered is None:
                for conn in clients:
                    conn.release_parked()  # errors and shutdown answers: the handlers know how
                continue
            assert reply is not None  # (rendered)
            head = rendered.head()
            body = reply.body if reply.status == 200 else b""
            for conn, flight in clients.items():
                if flight is not None and planner.after(flight, reply) is not AfterFlight.DELIVER:
                    conn.release_parked()  # short of writes it must see: the handlers ask again
                elif not conn.closed:
                    conn.answer_parked(head, body)
                    self._lane_long_poll.inc()

    def _render_recent(self, reply: Reply, route: PollRequest) -> Rendered | None:
        """A recent answer rendered once per client group (and cursor interval), not per client."""
        cursor = self.reads.planner.cursor(route)
        known = self._recent_heads.get(route)
        if known is not None and known[0] is reply and known[1] == cursor:
            return known[2]
        rendered = self._render(reply, route)
        if rendered is not None:
            self._recent_heads[route] = (reply, cursor, rendered)
        return rendered

    def _render(self, reply: Reply, route: PollRequest) -> Rendered | None:
        if reply.status not in (200, 204):
            return None
        headers = self.reads.long_poll_headers(reply, route)
        return Rendered(reply.status, headers, len(reply.body) if reply.status == 200 else 0)


def _route(message: RawRequestMessage, policy: AccessPolicy) -> Route:
    """What a plain GET of `message.path` asks, by the handlers' own rules; None: not for the lane."""
    raw_path, _, query_string = message.path.partition("?")
    if not raw_path.startswith(STREAM_PREFIX) or any(c in message.path for c in "%#") or "+" in query_string:
        return None  # anything that needs decoding takes the ordinary way
    try:
        path = validate_path(raw_path[len(STREAM_PREFIX) :])
        query = message.url.query
        read = parse.parse_read(query, query.getall(h.QUERY_OFFSET, []))
        if policy.enabled and SIGNATURE_PARAM not in query:
            # Anonymous access to a path never changes while the process runs (signed URLs,
            # which expire, never take the lane).
            authorize(policy, Right.READ, path, authorization=None, query=query, now_s=int(time.time()))
    except (ProtocolError, ValueError):
        return None
    if SIGNATURE_PARAM in query or read.live == h.LIVE_SSE:
        return None
    scope = ReadScope(path, None, signed=False)
    offset_text = query.get(h.QUERY_OFFSET)
    if read.live is None and from_start(offset_text):
        return FromStart(scope)
    offset = explicit(offset_text)
    if offset is None:
        return None
    if read.live == h.LIVE_LONG_POLL:
        return PollRequest(scope, offset, query[h.QUERY_OFFSET], read.cursor)
    return CatchUp(scope, offset)
