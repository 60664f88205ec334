"""Start pages: the origin's answer to a read from the start (`offset=-1`), kept for its max-age.

Every reader catching up on a stream begins with `offset=-1` (or no offset), then follows
Stream-Next-Offset through immutable chunks, which the edge caches. That first answer is not
immutable: where "the start" is can move (the stream deleted and created again, its oldest
records dropped by retention), so the origin lets caches keep it for a second
(shared.caching.TAIL_MAX_AGE) and no longer. Not kept at all, it cost every walk of a stream a
trip to the origin, a third of the edge's time when a stream is a few chunks long.

Only a complete first answer is kept: one that stopped at a chunk boundary before the tail (no
Stream-Up-To-Date, no Stream-Closed), whose bytes and headers no append or close can change.
It is a chunk of the cache under the start-page scope (edge.chunks.START_PAGE), keyed by the
offset it begins at, so it is answered as the origin answered (plus Age) within the byte budget,
dropped with its stream, and served only while edge.freshness allows (its max-age first). An
answer that reaches the tail is never kept: a read from the start must show at once what was
written at the origin by other ways, as the edge's explicit tail reads do.
"""

from __future__ import annotations

from plugin_streams.edge.chunks import Chunk, ChunkKey, start_scope
from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.offsets import Offset, parse_offset


def start_page(owner: str, reply: Reply) -> Chunk | None:
    """The chunk to keep (under `owner`'s start-page scope) for the origin's answer `reply` to a
    read from the start, or None if that answer must not be kept."""
    headers = reply.headers
    if reply.status != 200 or h.STREAM_UP_TO_DATE in headers or h.STREAM_CLOSED in headers:
        return None
    cache_control = headers.get(h.CACHE_CONTROL, "")
    if "no-store" in cache_control or "no-cache" in cache_control or not caching.max_age(cache_control):
        return None
    span = _span(headers.get(h.ETAG), headers.get(h.STREAM_NEXT_OFFSET))
    if span is None:
        return None
    begins, ends = span
    return Chunk.make(
        ChunkKey(start_scope(owner), begins.generation, begins.position),
        ends.position,
        reply.body,
        headers.get(h.CONTENT_TYPE, h.DEFAULT_CONTENT_TYPE),
        cache_control,
        headers.get(h.SURROGATE_KEY),
    )


def _span(etag: str | None, next_offset: str | None) -> tuple[Offset, Offset] | None:
    """Where the answer begins and ends, from its ETag ("<start>:<end>", shared.caching.etag),
    checked against its Stream-Next-Offset; None for anything else (never guessed)."""
    if etag is None or next_offset is None or len(etag) < 2 or etag[0] != '"' or etag[-1] != '"':
        return None
    start_text, _, end_text = etag[1:-1].partition(":")
    if end_text != next_offset:
        return None  # a closed range (":c") or another form
    try:
        begins, ends = parse_offset(start_text), parse_offset(end_text)
    except ProtocolError:
        return None
    if begins.generation != ends.generation or not begins.position < ends.position:
        return None
    return begins, ends
