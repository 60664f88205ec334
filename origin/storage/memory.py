"""MemoryStore: the reference engine and the oracle of the contract suite.

Nothing survives the process; `reopen()` returns a store over the same objects, which lets the
contract suite exercise the recover-after-restart path of every engine the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from plugin_streams.origin.storage.base import (
    LoadedStream,
    Record,
    RecordsDropped,
    StreamConfig,
    StreamMissing,
    summarize,
)


@dataclass(slots=True)
class _Stream:
    config: StreamConfig
    records: list[Record] = field(default_factory=list)
    last_access_ms: int = 0
    first_record: int = 0  # records numbered below this were dropped by retention
    first_position: int | None = None


class MemoryStore:
    def __init__(self) -> None:
        self._streams: dict[int, _Stream] = {}
        self._next_generation = 1

    def reopen(self) -> MemoryStore:
        other = MemoryStore()
        other._streams = self._streams
        other._next_generation = self._next_generation
        return other

    async def open(self) -> list[LoadedStream]:
        return [
            LoadedStream(
                s.config,
                summarize(s.records),
                s.last_access_ms or s.config.created_ms,
                s.first_record,
                s.first_position,
            )
            for s in self._streams.values()
        ]

    async def allocate_generation(self) -> int:
        generation = self._next_generation
        self._next_generation += 1
        return generation

    async def create(self, config: StreamConfig, records: Sequence[Record]) -> None:
        self._streams[config.generation] = _Stream(config, list(records), config.created_ms)

    def _get(self, generation: int) -> _Stream:
        stream = self._streams.get(generation)
        if stream is None:
            raise StreamMissing(str(generation))
        return stream

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        self._get(generation).records.extend(records)

    async def read(self, generation: int, first: int, last: int) -> bytes:
        stream = self._get(generation)
        if first < stream.first_record:
            raise RecordsDropped(f"records of stream {generation} were dropped by retention")
        kept = stream.records[first - stream.first_record : last - stream.first_record]
        return b"".join(record.payload for record in kept)

    async def drop_before(self, generation: int, record: int, position: int) -> None:
        stream = self._get(generation)
        if record > stream.first_record:
            del stream.records[: record - stream.first_record]
            stream.first_record = record
            stream.first_position = position

    async def replace_config(self, config: StreamConfig) -> None:
        self._get(config.generation).config = config

    async def remove(self, generation: int) -> None:
        self._streams.pop(generation, None)

    def disk_bytes(self) -> int:
        return 0

    def touch(self, generation: int, at_ms: int) -> None:
        stream = self._streams.get(generation)
        if stream is not None:
            stream.last_access_ms = at_ms

    async def flush_access_times(self) -> None:
        return None

    async def close(self) -> None:
        return None
