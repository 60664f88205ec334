"""Append and read, in messages: `POST .../:name/append` and `GET .../:name/read`.

Append takes one JSON value or a `[...]` batch (JSON streams), raw bytes otherwise, with the
protocol's producer headers, and answers with each message's offset. Read answers a page of
messages after an offset: at most one catch-up chunk of the protocol (so pages share its chunk
boundaries) and at most `limit` messages. A page that ends before the tail never changes and is
cached as immutable; one that reaches the tail is short-lived (shared.caching.catch_up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from plugin_streams.origin.append_decision import AppendResult
from plugin_streams.origin.boundaries import INLINE_BYTES
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.handlers import cache_scope
from plugin_streams.origin.positions import resolve_position
from plugin_streams.origin.reads import ReadResult, read
from plugin_streams.origin.rest.access import check
from plugin_streams.origin.rest.bodies import MAX_APPEND_MESSAGES
from plugin_streams.origin.rest.pages import Page, page_of, page_response
from plugin_streams.origin.rest.receipts import Receipt, Receipts
from plugin_streams.origin.rest.streams import json_response
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import caching, content_types, jsonmode
from plugin_streams.shared import headers as h
from plugin_streams.shared.auth import AccessPolicy, Right
from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.offsets import START
from plugin_streams.shared.parse import MAX_STREAM_SEQ_LENGTH, AppendRequest, is_true, parse_producer
from plugin_streams.shared.rest_pages import (
    DEFAULT_READ_LIMIT,
    MAX_READ_LIMIT,
    page_headers,
    parse_limit,
    requested_after,
    wants_raw,
)

T = TypeVar("T")


async def _off_loop_if_big(size: int, work: Callable[[], T]) -> T:
    """Run a structural scan of `size` bytes here when small, in a thread when big."""
    if size <= INLINE_BYTES:
        return work()
    return await asyncio.get_running_loop().run_in_executor(None, work)


async def check_batch_size(state: StreamState, body: bytes) -> None:
    """413 for a JSON batch of more than MAX_APPEND_MESSAGES: its answer lists every offset."""
    if not body or not content_types.is_json(state.config.content_type):
        return
    count = await _off_loop_if_big(len(body), lambda: jsonmode.count_batch(body, MAX_APPEND_MESSAGES))
    if count > MAX_APPEND_MESSAGES:
        raise PayloadTooLarge(f"a JSON append takes at most {MAX_APPEND_MESSAGES} messages here")


async def appended_offsets(result: AppendResult) -> list[str]:
    stored = result.stored
    if not stored:
        return []
    state = result.state
    end = result.next_position
    if content_types.is_json(state.config.content_type):
        start = end - len(stored)
        ends = await _off_loop_if_big(len(stored), lambda: jsonmode.message_ends(stored))
        return [str(state.offset_at(start + e)) for e in ends]
    return [str(state.offset_at(end))]


class MessageHandlers:
    def __init__(self, service: StreamService, config: OriginConfig, policy: AccessPolicy) -> None:
        self.service = service
        self.config = config
        self.policy = policy
        self.receipts = Receipts()

    # -- append -----------------------------------------------------------------------------

    async def append(self, request: web.Request, name: str) -> web.Response:
        check(request, self.policy, Right.WRITE, name)
        body = await request.read()
        closed = is_true(request.headers.get(h.STREAM_CLOSED))
        if not body and not closed:
            raise BadRequest("empty body: nothing to append")
        stream_seq = request.headers.get(h.STREAM_SEQ)
        if stream_seq is not None and not 0 < len(stream_seq) <= MAX_STREAM_SEQ_LENGTH:
            raise BadRequest(f"{h.STREAM_SEQ} must be 1 to {MAX_STREAM_SEQ_LENGTH} characters")
        producer = parse_producer(request.headers)
        await check_batch_size(await self.service.live(name), body)
        # The stream's own content type decides how the body is read, so none is checked here.
        append = AppendRequest(content_type=None, closed=closed, stream_seq=stream_seq, producer=producer)
        result = await self.service.append(name, append, body)
        state = result.state
        out: dict[str, object]
        if result.appended:
            offsets = await appended_offsets(result)
            next_offset = str(state.offset_at(result.next_position))
            if producer is not None:
                self.receipts.remember(state.generation, producer, Receipt(tuple(offsets), next_offset))
            out = {"offsets": offsets, "next_offset": next_offset, "duplicate": False}
        else:
            receipt = self.receipts.find(state.generation, producer) if producer is not None else None
            out = {
                "offsets": list(receipt.offsets) if receipt is not None else None,
                "next_offset": receipt.next_offset if receipt is not None else str(state.offset_at(state.tail)),
                "duplicate": True,
            }
        out["closed"] = result.closed
        headers = {h.STREAM_NEXT_OFFSET: str(out["next_offset"])}
        if result.producer_epoch is not None:
            headers[h.PRODUCER_EPOCH] = str(result.producer_epoch)
            headers[h.PRODUCER_SEQ] = str(result.producer_seq)
        return json_response(out, headers=headers)

    # -- read -------------------------------------------------------------------------------

    async def live_state(self, name: str) -> StreamState:
        now = self.service.clock_ms()
        state = await self.service.registry.find_live(name, now)
        self.service.touch(state, now)
        return state

    async def read(self, request: web.Request, name: str) -> web.Response:
        check(request, self.policy, Right.READ, name)
        limit = parse_limit(request.query, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)
        raw = wants_raw(request.query, request.headers.get(h.ACCEPT, ""))
        after = requested_after(request.query.get("after"))
        state = await self.live_state(name)
        position = resolve_position(state, after)
        result = await read(self.service.store, state, position, self.config.chunk_size)
        page = await page_of(state, result, limit)
        up_to_date = result.up_to_date and not page.cut
        cache_control = caching.catch_up(
            cache_scope(request), complete=not up_to_date, explicit_offset=after is not START
        )
        return self.page_response(request, state, result, page, raw=raw, cache_control=cache_control)

    def page_response(
        self, request: web.Request, state: StreamState, result: ReadResult, page: Page, *, raw: bool, cache_control: str
    ) -> web.Response:
        up_to_date = result.up_to_date and not page.cut
        closed = result.closed and not page.cut
        next_offset = str(state.offset_at(page.end))
        headers = page_headers(
            start=str(state.offset_at(page.start)),
            next_offset=next_offset,
            cache_control=cache_control,
            raw=raw,
            up_to_date=up_to_date,
            closed=closed,
            path=request.rel_url.raw_path,
            query=request.query,
        )
        return page_response(request, state, page, headers, raw=raw, up_to_date=up_to_date, closed=closed)
