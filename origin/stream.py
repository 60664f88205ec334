"""StreamState: one live stream incarnation in memory, and its fork chain.

Two views of the same stream live side by side:
- the committed view (`tail`, `starts`, `closed`, `producers`...) holds only what is durable;
  readers see nothing else, so no reader ever observes a partial or unacknowledged append;
- the validation view (`v_*`) also includes appends accepted but still being written; every
  new append is decided against it, which serialises producers without a lock.
A failed write rolls the validation view back to the committed one.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from plugin_streams.origin.boundaries import RecordBoundaries
from plugin_streams.origin.storage.base import LoadedStream, Record, StreamConfig
from plugin_streams.shared.offsets import Offset
from plugin_streams.shared.producer import ProducerState, ProducerTable, ProducerTuple

if TYPE_CHECKING:
    from plugin_streams.origin.shared_commit import PendingAppend


class StreamState:
    def __init__(self, config: StreamConfig, source: StreamState | None, last_access_ms: int) -> None:
        self.config = config
        self.source = source
        self.base = config.fork.position if config.fork is not None else 0
        self.starts: array[int] = array("q")
        self.tail = self.base
        self.closed = False
        self.closed_by: ProducerTuple | None = None
        self.producers = ProducerTable()
        self.stream_seq: str | None = None
        self.v_tail = self.base
        self.v_closed = False
        self.v_closed_by: ProducerTuple | None = None
        self.v_producers = ProducerTable()
        self.v_stream_seq: str | None = None
        self.queue: list[tuple[Record, asyncio.Future[None]]] = []
        self.flushing = False
        self.maintenance: Callable[[], Awaitable[None]] | None = None
        self.dropped = 0  # records numbered below this were removed by retention (starts[0] is this one)
        self.times: array[int] = array("q")  # accept time (unix ms) of each kept record; 0 if unknown
        self.retained_from = self.base  # reads before this position answer 410 Gone
        self.last_write: asyncio.Future[None] | None = None
        self.refcount = 0
        self.last_access_ms = last_access_ms
        self.removed = False  # no longer reachable by path; data may still serve forks
        self.changed: asyncio.Future[None] | None = None
        self.boundaries = RecordBoundaries()  # message boundaries inside big JSON records
        # Shared engines (several origins): appends waiting to be decided against the database's
        # state, and the lock that keeps a catch-up on other origins' appends and a commit apart.
        self.pending: list[PendingAppend] = []
        self.sync_lock = asyncio.Lock()

    @classmethod
    def from_loaded(cls, loaded: LoadedStream, source: StreamState | None) -> StreamState:
        state = cls(loaded.config, source, loaded.last_access_ms)
        position = state.base if loaded.first_position is None else loaded.first_position
        state.dropped = loaded.first_record
        state.retained_from = position
        for size in loaded.summary.sizes:
            state.starts.append(position)
            position += size
        state.times = array("q", loaded.summary.times)
        state.tail = state.v_tail = position
        summary = loaded.summary
        state.closed = state.v_closed = summary.closed
        state.closed_by = state.v_closed_by = summary.closed_by
        state.producers = summary.producers.copy()
        state.v_producers = summary.producers.copy()
        state.stream_seq = state.v_stream_seq = summary.stream_seq
        return state

    @property
    def generation(self) -> int:
        return self.config.generation

    @property
    def soft_deleted(self) -> bool:
        return self.config.soft_deleted

    def mark_soft_deleted(self) -> StreamConfig:
        self.config = replace(self.config, soft_deleted=True)
        return self.config

    # -- writes -----------------------------------------------------------------------------

    def accept(self, record: Record) -> int:
        """Apply an accepted append to the validation view; returns its end position."""
        self.v_tail += len(record.payload)
        if record.producer is not None:
            p = record.producer
            self.v_producers.record(p.producer_id, ProducerState(p.epoch, p.seq))
        if record.stream_seq is not None:
            self.v_stream_seq = record.stream_seq
        if record.closed:
            self.v_closed = True
            self.v_closed_by = record.producer
        return self.v_tail

    def commit(self, record: Record) -> None:
        """Apply a durable record to the committed view."""
        self.commit_meta(len(record.payload), record.written_ms or 0, record.producer)
        if record.stream_seq is not None:
            self.stream_seq = record.stream_seq
        if record.closed:
            self.closed = True
            self.closed_by = record.producer

    def commit_meta(self, size: int, written_ms: int, producer: ProducerTuple | None) -> None:
        """Apply a durable record known by its size, accept time and producer (another origin's)."""
        self.starts.append(self.tail)
        self.times.append(written_ms)
        self.tail += size
        if producer is not None:
            self.producers.record(producer.producer_id, ProducerState(producer.epoch, producer.seq))

    @property
    def record_count(self) -> int:
        """Records ever appended (dropped ones included): the number the next record gets."""
        return self.dropped + len(self.starts)

    def rollback(self) -> None:
        self.v_tail = self.tail
        self.v_closed = self.closed
        self.v_closed_by = self.closed_by
        self.v_producers = self.producers.copy()
        self.v_stream_seq = self.stream_seq

    # -- waiting ----------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake everyone waiting on this stream (new data, closure, deletion)."""
        if self.changed is not None:
            if not self.changed.done():
                self.changed.set_result(None)
            self.changed = None

    def change_future(self) -> asyncio.Future[None]:
        if self.changed is None:
            self.changed = asyncio.get_running_loop().create_future()
        return self.changed

    async def durable(self) -> None:
        """Wait until every append accepted so far is durable (or has failed)."""
        last = self.last_write
        if last is not None and not last.done():
            await asyncio.shield(last)

    # -- fork chain and positions -----------------------------------------------------------

    def chain(self) -> list[tuple[StreamState, int]]:
        """(member, upper bound) from this stream back to the root of its fork chain."""
        members: list[tuple[StreamState, int]] = [(self, self.tail)]
        child = self
        while child.source is not None:
            members.append((child.source, child.base))
            child = child.source
        return members

    def is_boundary(self, position: int, upper: int) -> bool:
        if position == self.base or position == upper:
            return True
        i = bisect_left(self.starts, position)
        return i < len(self.starts) and self.starts[i] == position

    def offset_at(self, position: int) -> Offset:
        """The offset naming `position`: minted by the chain member whose data starts there."""
        member: StreamState = self
        while position < member.base and member.source is not None:
            member = member.source
        return Offset(member.generation, position)

    def record_end(self, index: int) -> int:
        return self.starts[index + 1] if index + 1 < len(self.starts) else self.tail

    # -- retention --------------------------------------------------------------------------

    def retention_point(self, now_ms: int) -> int:
        """The earliest position the stream's retention keeps: always a record start (or the tail)."""
        retention = self.config.retention
        point = self.retained_from
        if retention is None:
            return point
        if retention.max_bytes is not None and self.tail - point > retention.max_bytes:
            i = bisect_left(self.starts, self.tail - retention.max_bytes)
            point = max(point, self.starts[i] if i < len(self.starts) else self.tail)
        if retention.max_age_seconds is not None:
            cutoff = now_ms - retention.max_age_seconds * 1000
            # Accept times never decrease along the log, so the first recent record splits it.
            i = bisect_left(self.times, cutoff)
            point = max(point, self.starts[i] if i < len(self.starts) else self.tail)
        return point

    def forget_records(self, count: int) -> None:
        """Storage dropped the first `count` kept records (retention compaction)."""
        del self.starts[:count]
        del self.times[:count]
        self.dropped += count
        self.boundaries.forget_before(self.starts[0] if self.starts else self.tail)
