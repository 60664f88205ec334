"""TailCachedStore: keeps the most recently appended records of each stream in memory, and
the most recently read ranges of older records.

Live readers almost always want what was just written: when one append wakes a thousand
long-polls, they are answered from here with no disk read and no thread hop. It wraps any
engine behind the same Store interface (and passes the same contract suite), holding for each
stream its newest records up to a per-stream budget, and at most `total_bytes` across streams
(least recently appended-to streams are forgotten first). Catch-up readers walking a stream
ask for the same chunks (the same record ranges), so older ranges read from disk are kept too,
in an LRU of `range_bytes`: records never change, so a kept range is never stale.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from cachetools import LRUCache

from plugin_streams.origin.storage.base import LoadedStream, Record, Store, StreamConfig

PER_STREAM_BYTES = 1024 * 1024


@dataclass(slots=True)
class _Tail:
    """A stream's newest payloads back to back, so any run of them is one slice.

    Byte positions count from the first record ever held, `base` being that of `data[0]`.
    The front is trimmed once the held bytes reach twice the budget, back to the budget: each
    byte is moved at most once, so keeping the tail costs O(1) per appended byte.
    """

    first: int  # number of the oldest record held
    data: bytearray = field(default_factory=bytearray)
    ends: array[int] = field(default_factory=lambda: array("q"))  # where each held record ends
    base: int = 0

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def count(self) -> int:
        return len(self.ends)

    def add(self, payload: bytes) -> None:
        self.data += payload
        self.ends.append(self.base + len(self.data))

    def slice(self, first: int, last: int) -> bytes:
        """Records [first, last), which must be held: one copy out of the buffer."""
        i, j = first - self.first, last - self.first
        start = self.ends[i - 1] if i > 0 else self.base
        with memoryview(self.data) as view:
            return bytes(view[start - self.base : self.ends[j - 1] - self.base])

    def trim(self, budget: int) -> None:
        """Drop the oldest records until at most `budget` bytes are held (the newest always stays)."""
        over = self.base + len(self.data) - budget  # dropping must reach at least this position
        if over > self.base:
            self.drop(min(bisect_left(self.ends, over) + 1, len(self.ends) - 1))

    def drop(self, count: int) -> None:
        """Forget the `count` oldest records."""
        if count <= 0:
            return
        new_base = self.ends[count - 1]
        del self.data[: new_base - self.base]
        del self.ends[:count]
        self.base = new_base
        self.first += count


class TailCachedStore:
    def __init__(
        self,
        inner: Store,
        total_bytes: int,
        per_stream_bytes: int = PER_STREAM_BYTES,
        range_bytes: int | None = None,
    ) -> None:
        self.inner = inner
        ranges = total_bytes // 2 if range_bytes is None else range_bytes
        self._ranges: LRUCache[tuple[int, int, int], bytes] = LRUCache(max(ranges, 1), getsizeof=len)
        self._per_stream = per_stream_bytes
        self._tails: LRUCache[int, _Tail] = LRUCache(max(total_bytes, 1), getsizeof=lambda t: t.size + 64)
        self._counts: dict[int, int] = {}  # records in each stream (absolute numbering)
        self.hits = 0
        self.misses = 0

    def _remember(self, generation: int, records: Sequence[Record]) -> None:
        count = self._counts.get(generation, 0)
        self._counts[generation] = count + len(records)
        tail = self._tails.pop(generation, None)
        if tail is None or tail.first + tail.count != count:
            tail = _Tail(count)
        for record in records:
            tail.add(record.payload)
        if tail.size > 2 * self._per_stream:
            tail.trim(self._per_stream)
        if tail.size + 64 <= self._tails.maxsize:
            self._tails[generation] = tail  # re-inserted, so its size and recency are current

    async def open(self) -> list[LoadedStream]:
        loaded = await self.inner.open()
        for item in loaded:
            self._counts[item.config.generation] = item.first_record + len(item.summary.sizes)
        return loaded

    async def allocate_generation(self) -> int:
        return await self.inner.allocate_generation()

    async def create(self, config: StreamConfig, records: Sequence[Record]) -> None:
        await self.inner.create(config, records)
        self._counts[config.generation] = 0
        self._remember(config.generation, records)

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        await self.inner.append(generation, records)
        self._remember(generation, records)

    async def read(self, generation: int, first: int, last: int) -> bytes:
        if first >= last:
            return b""
        tail = self._tails.get(generation)
        if tail is not None and first >= tail.first and last <= tail.first + tail.count:
            self.hits += 1
            return tail.slice(first, last)
        key = (generation, first, last)
        data = self._ranges.get(key)
        if data is not None:
            self.hits += 1
            return data
        self.misses += 1
        data = await self.inner.read(generation, first, last)
        if len(data) <= self._ranges.maxsize:
            self._ranges[key] = data
        return data

    async def drop_before(self, generation: int, record: int, position: int) -> None:
        await self.inner.drop_before(generation, record, position)
        if generation in self._counts and self._counts[generation] < record:
            # A cut past every record (a replica installed past the origin's dropped start):
            # the engine numbers the next append `record`, and so must the tail.
            self._counts[generation] = record
        for key in [k for k in self._ranges if k[0] == generation and k[1] < record]:
            del self._ranges[key]  # (rare: retention compaction) dropped records read as dropped
        tail = self._tails.get(generation)
        if tail is not None:
            tail.drop(min(record - tail.first, tail.count))

    async def replace_config(self, config: StreamConfig) -> None:
        await self.inner.replace_config(config)

    async def remove(self, generation: int) -> None:
        # Ranges of this generation stay until the LRU drops them: generations are never reused.
        self._tails.pop(generation, None)
        self._counts.pop(generation, None)
        await self.inner.remove(generation)

    def disk_bytes(self) -> int:
        return self.inner.disk_bytes()

    def touch(self, generation: int, at_ms: int) -> None:
        self.inner.touch(generation, at_ms)

    async def flush_access_times(self) -> None:
        await self.inner.flush_access_times()

    async def close(self) -> None:
        await self.inner.close()

    @property
    def discarded_bytes(self) -> int:
        return int(getattr(self.inner, "discarded_bytes", 0))
