"""REST reads at the edge: `GET .../:name/read?after=` from the cache, else one shared request.

A page from an explicit offset that stops before the tail never changes (the origin marks it
`immutable`): it is stored in the edge's cache tiers (edge.cache) under its stream, its credential
scope (edge.scope), its representation (JSON or raw) and its `limit`, and answers every later read
of exactly that page. Concurrent identical reads are one upstream request whatever their outcome;
pages that reach the tail are shared only by reads begun after this edge's last write to the
stream (edge.writes), and never stored.

Every answer is rendered for its own client: the `Link` to the next page follows the client's own
query, a conditional request gets its 304, a copy served to a signed URL never outlives it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.chunks import Chunk, ChunkKey, is_immutable, rest_scope
from plugin_streams.edge.coalesce import shared_headers
from plugin_streams.edge.long_poll_plan import FlightKey
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.reads import EdgeReads
from plugin_streams.edge.rest.paths import action_path, response_headers
from plugin_streams.edge.scope import ReadScope, read_scope
from plugin_streams.edge.upstream import Reply, Upstream
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.auth import SIGNED_PARAMS, AccessPolicy
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.offsets import NOW, Offset, RequestedOffset, parse_offset
from plugin_streams.shared.rest_pages import (
    DEFAULT_READ_LIMIT,
    MAX_READ_LIMIT,
    RAW_TYPE,
    not_modified_headers,
    page_headers,
    parse_limit,
    requested_after,
    wants_raw,
)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page, as the edge keys it: the client's own headers and query decide only this."""

    name: str
    scope: ReadScope
    after: RequestedOffset
    limit: int
    raw: bool

    @property
    def offset(self) -> Offset | None:
        return self.after if isinstance(self.after, Offset) else None

    @property
    def after_text(self) -> str:
        if isinstance(self.after, Offset):
            return str(self.after)
        return h.OFFSET_NOW if self.after is NOW else h.OFFSET_START

    @property
    def variant(self) -> str:
        return f"{'raw' if self.raw else 'json'}:{self.limit}"


def page_request(http: web.Request, name: str, policy: AccessPolicy, *, after: str | None = None) -> PageRequest:
    """The page a read asks for (each parameter checked as the origin checks it: 400 otherwise)."""
    query = http.query
    raw = wants_raw(query, http.headers.get(h.ACCEPT, ""))
    limit = parse_limit(query, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)
    requested = requested_after(query.get("after") if after is None else after)
    return PageRequest(name, read_scope(name, http.headers, query, policy), requested, limit, raw)


def upstream_headers(http: web.Request, raw: bool) -> CIMultiDict[str]:
    """Headers for a request shared by every client of a flight: credentials yes, conditionals no,
    and the representation named once (a flight's clients all want the same one)."""
    headers = shared_headers(http.headers)
    headers[h.ACCEPT] = RAW_TYPE if raw else h.JSON_CONTENT_TYPE
    return headers


def signed_query(query: Mapping[str, str]) -> dict[str, str]:
    """A signed URL's parameters, which the origin needs to authorise the shared request."""
    return {k: v for k, v in query.items() if k in SIGNED_PARAMS}


class RestReads:
    def __init__(
        self, upstream: Upstream, cache: ChunkCache, reads: EdgeReads, metrics: EdgeMetrics, policy: AccessPolicy
    ) -> None:
        self.upstream = upstream
        self.cache = cache
        self.planner = reads.planner  # this edge's writes, per stream: read-your-writes (edge.writes)
        self.metrics = metrics
        self.policy = policy
        self.flights: SingleFlight[FlightKey, Reply] = SingleFlight("rest-read")

    async def read(self, http: web.Request, name: str) -> web.Response:
        request = page_request(http, name, self.policy)
        return answer(await self.page(http, request), http, request)

    async def page(self, http: web.Request, request: PageRequest) -> Reply:
        """The page as the origin gives it: from the cache, else from one shared upstream request
        (a copy within its max-age when the origin cannot be reached)."""
        cached = await self.cached(request)
        if cached is not None:
            return cached
        key = self.planner.flight_key(request.scope, f"rest-read:{request.variant}:{request.after_text}")
        try:
            return await self.flights.run(key, lambda: self._fetch(http, request))
        except Unavailable:
            stale = await self.cached(request, unverified=True)
            if stale is None:
                raise
            return stale

    async def cached(self, request: PageRequest, *, unverified: bool = False) -> Reply | None:
        offset = request.offset
        if offset is None:
            return None
        scope = request.scope
        for owner in (scope.public, scope.credential):
            if owner is None or (owner == scope.public and scope.signed):
                continue
            owner_scope = rest_scope(owner, request.variant)
            found = await self.cache.find(owner_scope, offset.generation, offset.position, unverified=unverified)
            if found is not None:
                self.metrics.cache_hits.labels(found[1]).inc()
                return page_reply(found[0])
        self.metrics.cache_misses.inc()
        return None

    async def _fetch(self, http: web.Request, request: PageRequest) -> Reply:
        self.metrics.upstream.labels("rest_read").inc()
        query = {"after": request.after_text, "limit": str(request.limit), "format": "raw" if request.raw else "json"}
        path_qs = action_path(request.name, "read", query | signed_query(http.query))
        reply = await self.upstream.request("GET", path_qs, upstream_headers(http, request.raw))
        self.store(request, reply)
        return reply

    def store(self, request: PageRequest, reply: Reply) -> None:
        """Keep a page that can never change (complete, from an explicit offset)."""
        cache_control = reply.headers.get(h.CACHE_CONTROL)
        offset = request.offset
        if offset is None or reply.status != 200 or not is_immutable(cache_control):
            return
        assert cache_control is not None
        owner = request.scope.for_response(cache_control)
        end = parse_offset(reply.headers.get(h.STREAM_NEXT_OFFSET, ""))
        if owner is None or end.generation != offset.generation:
            return
        key = ChunkKey(rest_scope(owner, request.variant), offset.generation, offset.position)
        content_type = reply.headers.get(h.CONTENT_TYPE, h.JSON_CONTENT_TYPE)
        surrogate_key = reply.headers.get(h.SURROGATE_KEY)
        self.cache.put(Chunk.make(key, end.position, reply.body, content_type, cache_control, surrogate_key))


def page_reply(chunk: Chunk) -> Reply:
    """A stored page as the origin's answer (complete: neither up to date nor closed)."""
    start = Offset(chunk.key.generation, chunk.key.start)
    headers: CIMultiDict[str] = CIMultiDict()
    headers[h.CONTENT_TYPE] = chunk.content_type
    headers[h.STREAM_NEXT_OFFSET] = str(Offset(chunk.key.generation, chunk.end))
    headers[h.STREAM_START_OFFSET] = str(start)
    headers[h.CACHE_CONTROL] = chunk.cache_control
    headers[h.AGE] = str(chunk.age(time.time()))
    if chunk.surrogate_key:
        headers[h.SURROGATE_KEY] = chunk.surrogate_key
        headers[h.CACHE_TAG] = chunk.surrogate_key
    return Reply(200, headers, chunk.body)


def answer(reply: Reply, http: web.Request, request: PageRequest) -> web.Response:
    """A page (cached or shared) for this client: its own Link, conditionals and signature cap."""
    headers = response_headers(reply.headers)
    if reply.status != 200:
        return web.Response(status=reply.status, body=reply.body if reply.status != 204 else None, headers=headers)
    next_offset = headers[h.STREAM_NEXT_OFFSET]
    rendered = page_headers(
        start=headers.get(h.STREAM_START_OFFSET, request.after_text),
        next_offset=next_offset,
        cache_control=headers.get(h.CACHE_CONTROL, caching.NO_STORE),
        raw=request.raw,
        up_to_date=h.STREAM_UP_TO_DATE in headers,
        closed=h.STREAM_CLOSED in headers,
        path=http.rel_url.raw_path,
        query=http.query,
    )
    headers.popall(h.LINK, None)
    headers.update(rendered)
    scope = request.scope
    if scope.signed_until is not None:
        remaining = max(0, scope.signed_until - int(time.time()))
        headers[h.CACHE_CONTROL] = caching.cap_max_age(headers[h.CACHE_CONTROL], remaining)
    if caching.if_none_match(http.headers.get(h.IF_NONE_MATCH), headers[h.ETAG]):
        return web.Response(status=304, headers=not_modified_headers(headers))
    return web.Response(status=200, body=reply.body, headers=headers)
