"""The one storage interface, its value types and its error tree.

A store persists stream incarnations: an immutable configuration plus an append-only list of
records. Each record carries its payload together with everything the protocol must remember
about the write that made it (closure, producer tuple, Stream-Seq), so recovery rebuilds
producer state from the log itself and a crash can never separate data from that state.

Records of one stream are numbered 0, 1, 2... in append order. Stores know nothing of offsets,
positions, HTTP or producer rules; the service above them owns those.

Errors (every method may raise them):
    StorageError
    ├── StreamMissing    the generation is unknown (deleted, never created)
    ├── RecordsDropped   retention removed the records asked for
    ├── PathTaken        create: another incarnation holds the path (shared engines: another origin)
    └── StorageFailure   the disk refused (ENOSPC, EIO...); nothing was acknowledged
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from plugin_streams.shared.parse import Expiry, Retention
from plugin_streams.shared.producer import ProducerState, ProducerTable, ProducerTuple


class StorageError(Exception):
    pass


class StreamMissing(StorageError):
    pass


class StorageFailure(StorageError):
    pass


class RecordsDropped(StorageError):
    pass


class PathTaken(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class ForkLink:
    """Where a fork's own data starts, and the request that created it (for idempotent PUTs)."""

    source_generation: int
    source_path: str
    position: int  # logical position of the fork point; own records start here
    requested_offset: str | None  # Stream-Fork-Offset as sent (None: the source's tail)
    requested_sub_offset: int


@dataclass(frozen=True, slots=True)
class StreamConfig:
    generation: int
    path: str
    content_type: str
    ttl_seconds: int | None
    expires: Expiry | None
    created_ms: int
    fork: ForkLink | None = None
    soft_deleted: bool = False
    retention: Retention | None = None
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    payload: bytes
    closed: bool = False
    producer: ProducerTuple | None = None
    stream_seq: str | None = None
    written_ms: int | None = None  # when the append was accepted (retention by age)


@dataclass(slots=True)
class Summary:
    """What a stream's log says, folded: record sizes, producers, Stream-Seq and closure."""

    sizes: array[int] = field(default_factory=lambda: array("q"))
    times: array[int] = field(default_factory=lambda: array("q"))  # written_ms, 0 if unknown
    producers: ProducerTable = field(default_factory=ProducerTable)
    stream_seq: str | None = None
    closed: bool = False
    closed_by: ProducerTuple | None = None

    def apply(self, size: int, record_meta: Record) -> None:
        self.sizes.append(size)
        self.times.append(record_meta.written_ms or 0)
        producer = record_meta.producer
        if producer is not None:
            self.producers.record(producer.producer_id, ProducerState(producer.epoch, producer.seq))
        if record_meta.stream_seq is not None:
            self.stream_seq = record_meta.stream_seq
        if record_meta.closed:
            self.closed = True
            self.closed_by = producer


def summarize(records: Iterable[Record]) -> Summary:
    summary = Summary()
    for record in records:
        summary.apply(len(record.payload), record)
    return summary


@dataclass(slots=True)
class LoadedStream:
    config: StreamConfig
    summary: Summary  # of the records still kept (after any retention compaction)
    last_access_ms: int
    first_record: int = 0  # number of the first kept record (records before it were dropped)
    first_position: int | None = None  # logical position of the first kept record (None: base)


class Store(Protocol):
    """Durable home of stream incarnations. All methods run on the event loop."""

    async def open(self) -> list[LoadedStream]:
        """Recover and return every stream; idempotent. Raises StorageFailure."""

    async def allocate_generation(self) -> int:
        """A generation never returned before, even across restarts. Raises StorageFailure."""

    async def create(self, config: StreamConfig, records: Sequence[Record]) -> None:
        """Durably create a stream with its first records. Raises StorageFailure."""

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        """Durably append records in order; returns once they survive a crash.

        Raises StreamMissing, StorageFailure (then none of `records` is kept).
        """

    async def read(self, generation: int, first: int, last: int) -> bytes:
        """Payloads of records [first, last) concatenated.

        Raises StreamMissing, RecordsDropped (retention removed some of them), StorageFailure.
        """

    async def drop_before(self, generation: int, record: int, position: int) -> None:
        """Retention: durably forget records numbered below `record` (whose data starts at
        logical `position`), reclaiming their space. Never concurrent with `append` for the
        same stream (the service serialises them). Raises StreamMissing, StorageFailure."""

    async def replace_config(self, config: StreamConfig) -> None:
        """Durably replace a stream's configuration. Raises StreamMissing, StorageFailure."""

    async def remove(self, generation: int) -> None:
        """Durably remove a stream; its space is reclaimed, possibly later. Raises StorageFailure."""

    def disk_bytes(self) -> int:
        """Bytes the store's data occupies (0 for stores without a disk)."""

    def touch(self, generation: int, at_ms: int) -> None:
        """Note the last access (sliding TTL); persisted by the next flush_access_times."""

    async def flush_access_times(self) -> None:
        """Persist noted access times (best effort, no fsync)."""

    async def close(self) -> None:
        """Release files and handles."""
