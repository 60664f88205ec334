"""The log feed: one incarnation's records from a position on, as stored, then live.

Frames (shared.replication): each record with its start, length, closure and accept time, so a
replica stores the same records and mints the same offsets; a heartbeat when caught up and
every `heartbeat` seconds while idle. Only committed (durable) records are ever sent. Reading
the feed is not an access: it never extends a stream's TTL (replicas report their own readers
through /touch).
"""

from __future__ import annotations

from bisect import bisect_left

from aiohttp import web

from plugin_streams.origin.reads import wait_for_data
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage.base import StorageError
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import replication as r
from plugin_streams.shared.errors import BadRequest, Gone
from plugin_streams.shared.headers import CACHE_CONTROL, CONTENT_TYPE, STREAM_EARLIEST_OFFSET, X_ACCEL_BUFFERING

BATCH_BYTES = 1024 * 1024  # records read and written per step while catching up


class _Ended(Exception):
    """The records asked for went away (deleted, retention, storage): end; the replica reconnects."""


def check_start(state: StreamState, start: int) -> None:
    if start < state.retained_from:
        earliest = str(state.offset_at(state.retained_from))
        raise Gone("records before this position are no longer retained", {STREAM_EARLIEST_OFFSET: earliest})
    if start > state.tail:
        raise BadRequest("position is beyond the end of the stream")
    if start not in (state.base, state.tail) and not state.is_boundary(start, state.tail):
        raise BadRequest("position is not a record boundary")


async def serve_log(
    request: web.Request, service: StreamService, state: StreamState, start: int, heartbeat: float
) -> web.StreamResponse:
    check_start(state, start)
    response = web.StreamResponse(status=200)
    response.headers[CONTENT_TYPE] = r.CONTENT_TYPE_LOG
    response.headers[CACHE_CONTROL] = "no-store"
    response.headers[X_ACCEL_BUFFERING] = "no"
    # Walk by record number, not by position: a close-only append is an empty record, which
    # shares its position with the tail.
    number = state.dropped + bisect_left(state.starts, start)
    try:
        await response.prepare(request)
        while not service.stopping:
            frames, number = await _next_records(service, state, number)
            if frames:
                await response.write(frames)
                continue
            sent_up_to, gone, closed = state.tail, state.removed, state.closed
            await response.write(r.heartbeat_frame(sent_up_to, state.retained_from, closed, gone))
            if gone or closed:
                break
            await wait_for_data(state, sent_up_to, heartbeat, lambda: service.stopping)
        await response.write_eof()
    except (ConnectionResetError, _Ended):
        pass  # the replica went away, or the data did: it reconnects and learns which
    return response


async def _next_records(service: StreamService, state: StreamState, number: int) -> tuple[bytes, int]:
    """Frames of the committed records from record `number` on (up to BATCH_BYTES), and the next number."""
    starts = state.starts
    dropped = state.dropped
    first = number - dropped
    if first < 0:
        raise _Ended("retention removed the next record")
    if first >= len(starts):
        return b"", number
    last, size = first, 0
    while last < len(starts) and (size < BATCH_BYTES or last == first):
        size += state.record_end(last) - starts[last]
        last += 1
    # Snapshot everything the frames need before the read yields to the loop.
    bounds = [(starts[i], state.record_end(i) - starts[i], state.times[i]) for i in range(first, last)]
    closes = state.closed and last == len(starts)
    try:
        data = await service.store.read(state.generation, dropped + first, dropped + last)
    except StorageError as exc:  # removed, dropped by retention, or a disk error
        raise _Ended(str(exc)) from None
    out = []
    offset = 0
    for i, (record_start, length, written_ms) in enumerate(bounds):
        out.append(r.record_header(record_start, length, closes and i == len(bounds) - 1, written_ms))
        out.append(data[offset : offset + length])
        offset += length
    return b"".join(out), dropped + last
