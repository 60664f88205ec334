"""HTTP handlers: request → shared.parse → service → headers → response. No decisions here."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from plugin_streams.origin.append_decision import AppendResult
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.limits import LiveLimiter
from plugin_streams.origin.live import LiveReads
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.positions import resolve_position
from plugin_streams.origin.reads import read
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import caching, content_types, parse
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.access import request_access
from plugin_streams.shared.aio.cors import preflight
from plugin_streams.shared.aio.location import public_location
from plugin_streams.shared.errors import MethodNotAllowed
from plugin_streams.shared.jsonmode import EMPTY_ARRAY
from plugin_streams.shared.offsets import NOW, START
from plugin_streams.shared.paths import validate_path


def stream_headers(state: StreamState, position: int) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    out[h.CONTENT_TYPE] = state.config.content_type
    out[h.STREAM_NEXT_OFFSET] = str(state.offset_at(position))
    key = caching.surrogate_key(state.config.path)
    out[h.SURROGATE_KEY] = key
    out[h.CACHE_TAG] = key
    return out


def cache_scope(request: web.Request, state: StreamState | None = None) -> caching.Scope:
    """Who may share a cached copy, and for how long at most: never past a signed URL's expiry,
    nor past the stream's own (Stream-Expires-At, or one TTL window without a read reaching us)."""
    access = request_access(request)
    caps = []
    if access.signed_until is not None:
        caps.append(access.signed_until - int(time.time()))
    if state is not None:
        config = state.config
        if config.expires is not None:
            caps.append((config.expires.at_ms - int(time.time() * 1000)) // 1000)
        if config.ttl_seconds is not None:
            caps.append(config.ttl_seconds)
    cap = max(0, min(caps)) if caps else None
    return caching.Scope(public=access.public or access.signed_until is not None, max_age_cap=cap)


class StreamHandlers:
    def __init__(
        self, service: StreamService, config: OriginConfig, metrics: OriginMetrics, live_limit: LiveLimiter
    ) -> None:
        self.service = service
        self.config = config
        self.live = LiveReads(service, config, metrics, live_limit)
        self._methods: dict[str, Callable[[web.Request, str], Awaitable[web.StreamResponse]]] = {
            "GET": self.get,
            "HEAD": self.head,
            "PUT": self.put,
            "POST": self.post,
            "DELETE": self.delete,
        }

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return await preflight(request)
        method = self._methods.get(request.method)
        if method is None:
            raise MethodNotAllowed(
                f"method {request.method} not allowed", {h.ALLOW: "GET, HEAD, PUT, POST, DELETE, OPTIONS"}
            )
        return await method(request, validate_path(request.match_info["path"]))

    async def put(self, request: web.Request, path: str) -> web.Response:
        create = parse.parse_create(request.headers)
        body = await request.read()
        result = await self.service.create(path, create, body)
        state = result.state
        out = stream_headers(state, state.tail)
        if state.closed:
            out[h.STREAM_CLOSED] = "true"
        if result.created:
            out[h.LOCATION] = public_location(request, self.config.public_url)
        return web.Response(status=201 if result.created else 200, headers=out)

    async def post(self, request: web.Request, path: str) -> web.Response:
        body = await request.read()
        append = parse.parse_append(request.headers, body_empty=not body)
        result = await self.service.append(path, append, body)
        return web.Response(status=append_status(result, bool(body)), headers=append_headers(result))

    async def delete(self, request: web.Request, path: str) -> web.Response:
        await self.service.delete(path)
        key = caching.surrogate_key(path)  # names what a CDN should purge
        return web.Response(status=204, headers={h.SURROGATE_KEY: key, h.CACHE_TAG: key})

    async def head(self, request: web.Request, path: str) -> web.Response:
        state = await self.service.live(path)
        out = stream_headers(state, state.tail)
        config = state.config
        if config.ttl_seconds is not None:
            out[h.STREAM_TTL] = str(config.ttl_seconds)
        if config.expires is not None:
            out[h.STREAM_EXPIRES_AT] = config.expires.text
        if state.closed:
            out[h.STREAM_CLOSED] = "true"
        if config.retention is not None:
            if config.retention.max_age_seconds is not None:
                out[h.STREAM_RETENTION_MAX_AGE] = str(config.retention.max_age_seconds)
            if config.retention.max_bytes is not None:
                out[h.STREAM_RETENTION_MAX_BYTES] = str(config.retention.max_bytes)
        if config.max_size is not None:
            out[h.STREAM_MAX_SIZE] = str(config.max_size)
        if state.retained_from > state.base:
            out[h.STREAM_EARLIEST_OFFSET] = str(state.offset_at(state.retained_from))
        out[h.CACHE_CONTROL] = caching.NO_STORE
        return web.Response(status=200, headers=out)

    async def get(self, request: web.Request, path: str) -> web.StreamResponse:
        query = request.query
        read_request = parse.parse_read(query, query.getall(h.QUERY_OFFSET, []))
        now = self.service.clock_ms()
        state = await self.service.registry.find_live(path, now)
        self.service.touch(state, now)
        if read_request.live == h.LIVE_SSE:
            return await self.live.sse(request, state, read_request)
        if read_request.live == h.LIVE_LONG_POLL:
            return await self.live.long_poll(request, state, read_request, cache_scope(request, state))
        if read_request.offset is NOW:
            return _now_response(state)
        position = resolve_position(state, read_request.offset)
        result = await read(self.service.store, state, position, self.config.chunk_size)
        out = stream_headers(state, result.end)
        etag = caching.etag(str(state.offset_at(result.start)), out[h.STREAM_NEXT_OFFSET], closed=result.closed)
        out[h.ETAG] = etag
        out[h.CACHE_CONTROL] = caching.catch_up(
            cache_scope(request, state), complete=result.complete, explicit_offset=read_request.offset is not START
        )
        if result.up_to_date:
            out[h.STREAM_UP_TO_DATE] = "true"
        if result.closed:
            out[h.STREAM_CLOSED] = "true"
        if caching.if_none_match(request.headers.get(h.IF_NONE_MATCH), etag):
            return web.Response(status=304, headers={h.ETAG: etag, h.CACHE_CONTROL: out[h.CACHE_CONTROL]})
        return web.Response(status=200, body=result.body, headers=out)


def _now_response(state: StreamState) -> web.Response:
    """`offset=now` catch-up: no data, the tail offset, never cached (PROTOCOL.md §8)."""
    out = stream_headers(state, state.tail)
    out[h.STREAM_UP_TO_DATE] = "true"
    out[h.CACHE_CONTROL] = caching.NO_STORE
    if state.closed:
        out[h.STREAM_CLOSED] = "true"
    body = EMPTY_ARRAY if content_types.is_json(state.config.content_type) else b""
    return web.Response(status=200, body=body, headers=out)


def append_status(result: AppendResult, has_body: bool) -> int:
    # PROTOCOL.md §5.2.1: a new append with producer headers is 200; duplicates and closes are 204.
    if result.appended and result.producer_epoch is not None and has_body:
        return 200
    return 204


def append_headers(result: AppendResult) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    out[h.STREAM_NEXT_OFFSET] = str(result.state.offset_at(result.next_position))
    if result.closed:
        out[h.STREAM_CLOSED] = "true"
    if result.producer_epoch is not None:
        out[h.PRODUCER_EPOCH] = str(result.producer_epoch)
        out[h.PRODUCER_SEQ] = str(result.producer_seq)
    return out
