"""Deciding an append: the protocol's rules, in order, against a stream's validation view.

`decide_append` is the one place an append is judged: closure and content type (PROTOCOL.md
§5.2's precedence), an owner's expected position, the idempotent producer (§5.2.1), Stream-Seq.
It either accepts the append into the view (returning the record to write) or answers it without
a write (a duplicate, a repeated close), or raises the refusal. With one origin the service calls
it when the append arrives; with several (postgres engine) the shared committer calls it at
commit time, and again after catching up on another origin's appends.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin_streams.origin.registry import require_live
from plugin_streams.origin.storage.base import Record
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import content_types
from plugin_streams.shared.errors import BadRequest, Conflict, SequenceGap, StaleEpoch, StreamClosedConflict
from plugin_streams.shared.headers import (
    PRODUCER_EPOCH,
    PRODUCER_EXPECTED_SEQ,
    PRODUCER_RECEIVED_SEQ,
    STREAM_CLOSED,
    STREAM_NEXT_OFFSET,
)
from plugin_streams.shared.parse import AppendRequest
from plugin_streams.shared.producer import Outcome, ProducerTuple, decide


class TailMoved(Conflict):
    """An owner's append rendered for a position the stream no longer ends at."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    state: StreamState
    next_position: int
    closed: bool
    producer_epoch: int | None = None
    producer_seq: int | None = None
    appended: bool = True  # False: a duplicate or an idempotent close (204)
    stored: bytes = b""  # the payload as stored (JSON streams: comma-terminated messages)


def decide_append(
    state: StreamState, request: AppendRequest, body: bytes, payload: bytes, now: int, expected: int | None = None
) -> tuple[Record | None, AppendResult]:
    """Decide an append against the stream's validation view: the record to write (accepted
    into the view), or None and the answer of an append that writes nothing."""
    require_live(state)
    if expected is not None and state.v_tail != expected:
        raise TailMoved(f"the stream ends at {state.v_tail}, not at {expected}")
    check_closed_and_type(state, request, body)
    producer = request.producer
    if state.v_closed:
        # Only idempotent repeats reach here (see check_closed_and_type).
        return None, AppendResult(
            state,
            state.v_tail,
            closed=True,
            producer_epoch=producer.epoch if producer else None,
            producer_seq=producer.seq if producer else None,
            appended=False,
        )
    if producer is not None:
        duplicate_of = _judge_producer(state, producer)
        if duplicate_of is not None:
            return None, AppendResult(
                state,
                state.v_tail,
                closed=state.v_closed,
                producer_epoch=producer.epoch,
                producer_seq=duplicate_of,
                appended=False,
            )
    if request.stream_seq is not None and state.v_stream_seq is not None:
        if request.stream_seq.encode() <= state.v_stream_seq.encode():
            raise Conflict("Stream-Seq must increase")
    written = max(now, state.times[-1] if state.times else 0)  # never backwards (retention by age)
    record = Record(
        payload, closed=request.closed, producer=producer, stream_seq=request.stream_seq, written_ms=written
    )
    end = state.accept(record)
    return record, AppendResult(
        state,
        end,
        closed=request.closed,
        producer_epoch=producer.epoch if producer else None,
        producer_seq=producer.seq if producer else None,
        stored=payload,
    )


def check_closed_and_type(state: StreamState, request: AppendRequest, body: bytes) -> None:
    """Error precedence of PROTOCOL.md §5.2: closed first, then content type."""
    if state.v_closed:
        producer = request.producer
        repeat = producer == state.v_closed_by if producer is not None else (not body and request.closed)
        if not repeat:
            raise StreamClosedConflict(
                "stream is closed",
                {STREAM_CLOSED: "true", STREAM_NEXT_OFFSET: str(state.offset_at(state.v_tail))},
            )
        return
    if body and request.content_type is not None:
        if not content_types.same(request.content_type, state.config.content_type):
            raise Conflict("Content-Type does not match the stream's")


def _judge_producer(state: StreamState, producer: ProducerTuple) -> int | None:
    """The last sequence number of an append this one repeats, None for a new one; else the refusal."""
    decision = decide(state.v_producers.get(producer.producer_id), producer.epoch, producer.seq)
    if decision.outcome is Outcome.DUPLICATE:
        assert decision.state is not None
        return decision.state.last_seq
    if decision.outcome is Outcome.STALE_EPOCH:
        assert decision.state is not None
        raise StaleEpoch("stale producer epoch", {PRODUCER_EPOCH: str(decision.state.epoch)})
    if decision.outcome is Outcome.BAD_EPOCH_SEQ:
        raise BadRequest("a new producer epoch must start at Producer-Seq 0")
    if decision.outcome is Outcome.SEQUENCE_GAP:
        raise SequenceGap(
            "producer sequence gap",
            {PRODUCER_EXPECTED_SEQ: str(decision.expected_seq), PRODUCER_RECEIVED_SEQ: str(producer.seq)},
        )
    return None
