"""Messages of a read, with their offsets: the one place the REST API decides what a message is.

- JSON streams: each JSON value is a message; a batch append is one record holding several,
  and a read may start at any message boundary (jsonmode.message_ends).
- Other content types: each append (record) is a message; boundaries are the records' starts
  across the fork chain. A read from inside a record yields the rest of it as one message.

A message's offset is the position just AFTER it, so `after=<offset>` resumes right after it.
Message data travels as JSON: the value itself (JSON streams), a string (`text/*`), or base64.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from plugin_streams.origin.boundaries import INLINE_BYTES
from plugin_streams.origin.reads import ReadResult
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import caching, content_types, jsonmode, rest_pages
from plugin_streams.shared import headers as h
from plugin_streams.shared.rest_pages import Encoding, encoding_of, json_body, not_modified_headers


@dataclass(frozen=True, slots=True)
class Page:
    """Messages from `start` to `end` (positions); `cut` when `limit` stopped it early."""

    start: int
    end: int
    ends: tuple[int, ...]  # the position after each message
    payloads: tuple[bytes, ...]  # each message as stored (JSON: one compact value, no comma)
    cut: bool

    def data_json(self, encoding: Encoding) -> list[bytes]:
        """Each message's `data` as JSON text, without re-parsing stored JSON values."""
        return [rest_pages.data_json(p, encoding) for p in self.payloads]

    def raw(self, json_stream: bool) -> bytes:
        """The page in the stream's own representation (the protocol's read body)."""
        joined = b"".join(self.payloads)
        if not json_stream:
            return joined
        return b"[" + b",".join(self.payloads) + b"]"


def record_ends(state: StreamState, start: int, end: int) -> list[int]:
    """Record boundaries in (start, end], across the fork chain; `end` is always one."""
    found = {end}
    for member, upper in state.chain():
        low, high = max(start, member.base), min(end, upper)
        if low >= high:
            continue
        starts = member.starts
        i = bisect_right(starts, low)
        while i < len(starts) and starts[i] < high:
            found.add(starts[i])
            i += 1
        found.add(high)  # where this member's visible part ends (a fork point)
    return sorted(p for p in found if start < p <= end)


async def json_message_ends(stored: bytes, limit: int) -> list[int]:
    """The first `limit` message ends of stored JSON: scanned on the loop when the body is small,
    off it otherwise (one message may hold millions of values, and a page costs its own size)."""
    if len(stored) <= INLINE_BYTES:
        return jsonmode.message_ends(stored, limit=limit)
    return await asyncio.get_running_loop().run_in_executor(None, partial(jsonmode.message_ends, stored, limit=limit))


async def page_of(state: StreamState, result: ReadResult, limit: int) -> Page:
    start = result.start
    if content_types.is_json(state.config.content_type):
        stored = jsonmode.unframe(result.body)
        relative = await json_message_ends(stored, limit + 1)  # one more says whether `limit` cut it
        previous = 0
        payloads = []
        for end in relative[:limit]:
            payloads.append(stored[previous : end - 1])
            previous = end
        ends = [start + e for e in relative]
    else:
        ends = record_ends(state, start, result.end) if result.end > start else []
        payloads = []
        previous = start
        for end in ends[:limit]:
            payloads.append(result.body[previous - start : end - start])
            previous = end
    cut = len(ends) > limit
    kept = tuple(ends[:limit])
    return Page(start, kept[-1] if kept else start, kept, tuple(payloads), cut)


def page_response(
    request: web.Request,
    state: StreamState,
    page: Page,
    headers: dict[str, str],
    *,
    raw: bool,
    up_to_date: bool,
    closed: bool,
    extra: dict[str, object] | None = None,
) -> web.Response:
    """A page with its `headers` (shared.rest_pages.page_headers, or a variant): 304 when the
    client holds it, the raw bytes, or the JSON body (`extra` fields in it)."""
    if caching.if_none_match(request.headers.get(h.IF_NONE_MATCH), headers[h.ETAG]):
        return web.Response(status=304, headers=not_modified_headers(headers))
    # The stream's own purge tag, as its protocol reads carry: one purge clears both APIs' copies.
    key = caching.surrogate_key(state.config.path)
    headers[h.SURROGATE_KEY] = headers[h.CACHE_TAG] = key
    content_type = state.config.content_type
    if raw:
        headers[h.CONTENT_TYPE] = content_type
        return web.Response(status=200, body=page.raw(content_types.is_json(content_type)), headers=headers)
    encoding = encoding_of(content_type)
    items = zip((str(state.offset_at(end)) for end in page.ends), page.data_json(encoding), strict=True)
    next_offset = headers[h.STREAM_NEXT_OFFSET]
    body = json_body(
        items, next_offset=next_offset, up_to_date=up_to_date, closed=closed, encoding=encoding, extra=extra
    )
    return web.Response(status=200, body=body, headers=headers, content_type=h.JSON_CONTENT_TYPE)
