"""Offsets to positions and back, across a fork chain (PROTOCOL.md §8).

An offset (generation, position) is valid for a stream when some member of its fork chain
minted that generation and the position lies inside the part of that member the stream can
see: any byte of a byte stream, a message boundary of a JSON stream (checked when read). Offsets of an incarnation
that is gone answer 410, so a URL that a cache stored for an old incarnation can never be
answered with a new one's bytes.
"""

from __future__ import annotations

from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.errors import BadRequest, Gone
from plugin_streams.shared.headers import STREAM_EARLIEST_OFFSET
from plugin_streams.shared.offsets import NOW, START, Offset, RequestedOffset


def resolve_position(state: StreamState, requested: RequestedOffset, *, for_fork: bool = False) -> int:
    if requested is START:
        return state.chain()[-1][0].retained_from  # the earliest data the root still keeps
    if requested is NOW:
        return state.tail
    assert isinstance(requested, Offset)
    if requested.is_zero:
        return resolve_position(state, START)
    for member, upper in state.chain():
        if member.generation == requested.generation:
            return _position_in(state, member, upper, requested.position, for_fork=for_fork)
    if requested.generation < state.generation:
        raise Gone("offset belongs to an earlier incarnation of this stream")
    raise BadRequest("offset is beyond the end of the stream")


def _position_in(state: StreamState, member: StreamState, upper: int, position: int, *, for_fork: bool) -> int:
    """`position` of the chain member that minted the offset's generation, if the stream sees it."""
    if position > upper:
        what = "fork offset" if for_fork else "offset"
        raise BadRequest(f"{what} is beyond the end of the stream")
    if position < member.base:
        raise BadRequest("offset is not a position of this stream")
    if position < member.retained_from:
        earliest = state.offset_at(member.retained_from)
        raise Gone("data before this offset is no longer retained", {STREAM_EARLIEST_OFFSET: str(earliest)})
    # Reads may start at any byte (JSON streams: any message boundary, which the read checks
    # against the record's bytes); a fork point must be an append boundary, since
    # sub-offsets address positions inside appends.
    if for_fork and not member.is_boundary(position, upper):
        raise BadRequest("fork offset is not an append boundary")
    return position
