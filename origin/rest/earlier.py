"""Reading backwards: `GET .../:name/read?before=<offset>&limit=N`, the last messages before an offset.

A reader that opens a stream at its tail (the live page) shows the newest messages and walks
back on demand. Forward reads cannot do that soundly: an offset computed by subtracting bytes
lands inside a message. Here the origin walks back over record starts (kept in memory) and cuts
messages exactly as a forward read from a record start does, so the messages and offsets are
the forward reads' own, and a page's `start_offset` is the `before` of the page preceding it:
no gap and no duplicate at the seam.

Cost, as a forward page's: one page reads at most `limit` records and about one chunk
(`--chunk-size`) of bytes before `before` (a single bigger record is read whole, as a forward
read does), so a page may hold fewer than `limit` messages; `has_earlier` says whether to go on.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from plugin_streams.origin.handlers import cache_scope
from plugin_streams.origin.positions import resolve_position
from plugin_streams.origin.reads import read
from plugin_streams.origin.rest.access import check
from plugin_streams.origin.rest.messages import MessageHandlers
from plugin_streams.origin.rest.pages import Page, json_message_ends, page_response, record_ends
from plugin_streams.origin.storage.base import Store
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import caching, content_types, jsonmode
from plugin_streams.shared import headers as h
from plugin_streams.shared.auth import Right
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.offsets import NOW, parse_read_offset
from plugin_streams.shared.rest_pages import (
    DEFAULT_READ_LIMIT,
    MAX_READ_LIMIT,
    parse_limit,
    wants_raw,
)

#: The query parameter asking for the messages before an offset (instead of `after` one).
BEFORE: Final = "before"


@dataclass(frozen=True, slots=True)
class EarlierPage:
    """The last messages before `page.end`, and whether the stream keeps any before `page.start`."""

    page: Page
    has_earlier: bool


def record_starts_before(state: StreamState, end: int) -> Iterator[int]:
    """Record starts below `end` that a read can still reach, newest first, across the fork chain.

    The walk stops where data was dropped (retention): nothing before such a gap is readable.
    """
    for member, upper in state.chain():
        high = min(end, upper)
        low = member.retained_from
        starts = member.starts
        i = _last_below(starts, high)
        while i >= 0 and starts[i] >= low:
            yield starts[i]
            i -= 1
        if member.retained_from > member.base:
            return


def _last_below(starts: array[int], high: int) -> int:
    return bisect_left(starts, high) - 1


def walk_back(state: StreamState, end: int, records: int, budget: int) -> tuple[int, bool]:
    """(record start a page ending at `end` reads from, whether readable records precede it).

    Takes `records` records back, or fewer once they span `budget` bytes (at least one).
    """
    starts = record_starts_before(state, end)
    start = end
    for taken, position in enumerate(starts, 1):
        start = position
        if taken >= records or end - start >= budget:
            break
    return start, next(starts, None) is not None


def is_record_boundary(state: StreamState, position: int) -> bool:
    for member, upper in state.chain():
        if member.base <= position <= upper:
            return member.is_boundary(position, upper)
    return False


async def read_span(store: Store, state: StreamState, start: int, end: int, chunk_size: int) -> bytes:
    """The stored bytes from `start` (a record start) to `end`, read in the forward reads' chunks."""
    json_stream = content_types.is_json(state.config.content_type)
    parts = []
    position = start
    while position < end:
        result = await read(store, state, position, chunk_size)
        if result.end <= position:
            break  # nothing more was readable (cannot happen below the tail)
        parts.append(jsonmode.unframe(result.body) if json_stream else result.body)
        position = result.end
    return b"".join(parts)[: end - start]


async def earlier_page(store: Store, state: StreamState, end: int, limit: int, chunk_size: int) -> EarlierPage:
    """At most `limit` messages ending exactly at `end`, which must be a message boundary."""
    json_stream = content_types.is_json(state.config.content_type)
    if not json_stream and not is_record_boundary(state, end):
        raise BadRequest("before is not a message offset of this stream")
    start, more = walk_back(state, end, limit, chunk_size)
    stored = await read_span(store, state, start, end, chunk_size)
    if json_stream:
        relative = await json_message_ends(stored, len(stored) + 1)
        if stored and (not relative or relative[-1] != len(stored)):
            raise BadRequest("before is not a message offset of this stream")
        ends = [start + e for e in relative]
        separator = 1  # each stored JSON value is followed by its comma
    else:
        ends = _record_ends(state, start, end)
        separator = 0
    kept = ends[-limit:]
    first = ends[-limit - 1] if len(ends) > limit else start
    payloads = []
    previous = first
    for message_end in kept:
        payloads.append(stored[previous - start : message_end - start - separator])
        previous = message_end
    page = Page(first, end, tuple(kept), tuple(payloads), cut=False)
    return EarlierPage(page, has_earlier=more or first > start)


def _record_ends(state: StreamState, start: int, end: int) -> list[int]:
    return record_ends(state, start, end) if end > start else []


class EarlierReads:
    """`read?before=`: a read-shaped page plus `start_offset` (the `before` of the page preceding
    it) and `has_earlier`; `before=now` is the tail, `before=-1` the start (an empty page)."""

    def __init__(self, messages: MessageHandlers) -> None:
        self.messages = messages

    async def read(self, request: web.Request, name: str) -> web.Response:
        messages = self.messages
        check(request, messages.policy, Right.READ, name)
        if "after" in request.query:
            raise BadRequest("after and before cannot be combined")
        limit = parse_limit(request.query, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)
        raw = wants_raw(request.query, request.headers.get(h.ACCEPT, ""))
        before = parse_read_offset(request.query[BEFORE].strip())
        state = await messages.live_state(name)
        end = resolve_position(state, before)
        chunk_size = messages.config.chunk_size
        earlier = await earlier_page(messages.service.store, state, end, limit, chunk_size)
        up_to_date = end >= state.tail
        # Messages before an offset never change; the flags of a page that reaches the tail do.
        cache_control = caching.catch_up(
            cache_scope(request, state), complete=not up_to_date, explicit_offset=before is not NOW
        )
        return render(request, state, earlier, cache_control=cache_control, raw=raw)


def render(
    request: web.Request, state: StreamState, earlier: EarlierPage, *, cache_control: str, raw: bool
) -> web.Response:
    page = earlier.page
    start, next_offset = str(state.offset_at(page.start)), str(state.offset_at(page.end))
    up_to_date = page.end >= state.tail
    closed = up_to_date and state.closed
    headers = {
        h.STREAM_NEXT_OFFSET: next_offset,
        h.STREAM_START_OFFSET: start,
        h.CACHE_CONTROL: cache_control,
        h.ETAG: caching.etag(start, next_offset, closed=closed)[:-1] + (':before-raw"' if raw else ':before-json"'),
        h.VARY: h.ACCEPT,
    }
    links = _links(request, start if earlier.has_earlier else None, None if up_to_date else next_offset)
    if links:
        headers[h.LINK] = links
    if up_to_date:
        headers[h.STREAM_UP_TO_DATE] = "true"
    if closed:
        headers[h.STREAM_CLOSED] = "true"
    extra: dict[str, object] = {"start_offset": start, "has_earlier": earlier.has_earlier}
    return page_response(request, state, page, headers, raw=raw, up_to_date=up_to_date, closed=closed, extra=extra)


def _links(request: web.Request, earlier: str | None, later: str | None) -> str:
    """`rel="prev"` (the page before this one) and `rel="next"` (reading on forwards), as apply."""
    query = {k: v for k, v in request.query.items() if k not in (BEFORE, "after")}
    path = request.rel_url.raw_path
    links = []
    if earlier is not None:
        links.append(f'<{path}?{urlencode(query | {BEFORE: earlier})}>; rel="prev"')
    if later is not None:
        links.append(f'<{path}?{urlencode(query | {"after": later})}>; rel="next"')
    return ", ".join(links)
