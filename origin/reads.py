"""Catch-up reads in deterministic chunks, and waiting at the tail for live reads.

A read from position p returns whole records from p, stopping before the first record that
would end past the next multiple of the chunk size (one oversized record is returned whole).
Every reader walking a stream therefore asks for the same sequence of offsets, and a response
that stopped because the next record crossed the boundary can never change: it is immutable.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from plugin_streams.origin.storage.base import RecordsDropped, StorageError, Store, StreamMissing
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import content_types, jsonmode
from plugin_streams.shared.errors import BadRequest, Gone, NotFound, Unavailable
from plugin_streams.shared.headers import RETRY_AFTER, STREAM_EARLIEST_OFFSET


@dataclass(frozen=True, slots=True)
class ReadResult:
    body: bytes
    start: int
    end: int
    up_to_date: bool
    closed: bool  # the stream is closed and this response reaches its final offset
    complete: bool  # ended at a chunk boundary before the tail: the bytes never change


@dataclass(frozen=True, slots=True)
class _Span:
    """Records [first, last) of one chain member, numbered as the store numbers them."""

    member: StreamState
    first: int
    last: int
    skip: int = 0  # bytes of the first record before the read's start
    first_start: int = 0  # position of the first record (keys its JSON message boundaries)
    first_size: int = 0  # size of the first record (to check JSON message boundaries)


def _span(member: StreamState, first: int, last: int, skip: int) -> _Span:
    start = member.starts[first]
    size = member.record_end(first) - start
    return _Span(member, member.dropped + first, member.dropped + last, skip, start, size)


def _plan(state: StreamState, start: int, chunk_size: int) -> tuple[list[_Span], int, bool]:
    """Which records a read from `start` returns, where it ends, and whether it is complete.

    The chunk window is anchored at the start of the record holding `start`, so a read from
    inside a record ends exactly where a read from that record's start does: a cache holding
    the latter can answer the former with a slice. Found by bisection, so planning costs the
    same whatever the number of records in the chunk.
    """
    boundary = -1
    spans: list[_Span] = []
    end = start
    members = list(reversed(state.chain()))  # root first
    for member, upper in members:
        if end >= upper or end < member.base:
            continue
        first = bisect_right(member.starts, end) - 1
        if first < 0 or member.record_end(first) <= end:
            first += 1  # `end` is a record boundary (or before the first record)
        skip = end - member.starts[first] if first < len(member.starts) else 0
        if boundary < 0:
            boundary = ((start - skip) // chunk_size + 1) * chunk_size
        below = bisect_left(member.starts, upper, first)  # records of this member the read may reach
        fits = max(first, min(below, _records_ending_by(member, boundary)))
        reached = member.record_end(fits - 1) if fits > first else end
        if reached == start and fits < below:
            fits += 1  # no bytes yet: the next record is returned whole, however big
            reached = member.record_end(fits - 1)
        if fits > first:
            spans.append(_span(member, first, fits, skip))
            end = reached
        if fits < below:
            return spans, end, True  # the next record would cross the boundary
    return spans, end, False


def _records_ending_by(member: StreamState, position: int) -> int:
    """How many of the member's records end at or before `position` (records ends never decrease)."""
    starts = member.starts
    after = bisect_right(starts, position)  # records starting at or before `position`
    if after == len(starts) and member.tail <= position:
        return after
    return max(after - 1, 0)


async def read(store: Store, state: StreamState, start: int, chunk_size: int) -> ReadResult:
    spans, end, complete = _plan(state, start, chunk_size)
    json_stream = content_types.is_json(state.config.content_type)
    tail = state.tail
    closed = state.closed
    parts = []
    try:
        for span in spans:
            data = await store.read(span.member.generation, span.first, span.last)
            if span.skip:
                if json_stream:
                    record = memoryview(data)[: span.first_size]
                    if not await span.member.boundaries.is_end(span.first_start, record, span.skip):
                        raise BadRequest("offset is not a message boundary of this JSON stream")
                data = data[span.skip :]
            parts.append(data)
    except StreamMissing:
        raise NotFound("stream not found") from None
    except RecordsDropped:
        earliest = state.offset_at(state.chain()[-1][0].retained_from)
        raise Gone("data at this offset is no longer retained", {STREAM_EARLIEST_OFFSET: str(earliest)}) from None
    except StorageError as exc:
        raise Unavailable("could not read the stream", {RETRY_AFTER: "1"}) from exc
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    if json_stream:
        body = jsonmode.frame(body)
    up_to_date = end >= tail and not complete
    return ReadResult(body, start, end, up_to_date, closed and up_to_date, complete)


async def wait_for_data(
    state: StreamState, position: int, timeout: float, stopping: Callable[[], bool] = lambda: False
) -> bool:
    """Wait until the stream has data past `position`, closes, is removed, or the server stops.

    Returns False on timeout. Woken by commits (StreamState.notify), never by polling.
    """
    try:
        async with asyncio.timeout(timeout):
            while state.tail <= position and not state.closed and not state.removed and not stopping():
                await asyncio.shield(state.change_future())
    except TimeoutError:
        return False
    return True
