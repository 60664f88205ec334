"""TailCachedStore: its answers are the inner store's, whatever is held, trimmed or evicted.

Random appends (batches of random sizes, empty payloads included), retention cuts and reads
of random ranges over a memory store, compared with what the records are; plus the bounds:
a stream's held bytes stay under twice its budget and the newest record is always held.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_streams.origin.storage import MemoryStore, Record, StreamConfig
from plugin_streams.origin.storage.tail_cache import TailCachedStore

payload_sizes = st.sampled_from([0, 1, 3, 10, 50, 200, 700])
batches = st.lists(st.lists(payload_sizes, min_size=1, max_size=8), min_size=1, max_size=25)


async def exercise(sizes: list[list[int]], per_stream: int, total: int, reads: list[tuple[int, int]], cut: int) -> None:
    store = TailCachedStore(MemoryStore(), total_bytes=total, per_stream_bytes=per_stream)
    await store.open()
    generation = await store.allocate_generation()
    await store.create(StreamConfig(generation, "s", "application/octet-stream", None, None, 0), [])
    payloads: list[bytes] = []
    for batch in sizes:
        records = [Record(bytes([len(payloads) % 251]) * size) for size in batch]
        payloads.extend(record.payload for record in records)
        await store.append(generation, records)
        tail = store._tails.get(generation)
        if tail is not None:
            assert tail.size <= 2 * per_stream or tail.count == 1
            assert tail.first + tail.count == len(payloads)
            if tail.first > 0 and total == 10**6:  # never evicted, so trimmed: no more than needed
                assert tail.size + len(payloads[tail.first - 1]) > per_stream
    count = len(payloads)
    for a, b in reads:
        first, last = sorted((a % (count + 1), b % (count + 1)))
        assert await store.read(generation, first, last) == b"".join(payloads[first:last])
    cut %= count + 1
    if cut:
        position = sum(len(p) for p in payloads[:cut])
        await store.drop_before(generation, cut, position)
        tail = store._tails.get(generation)
        assert tail is None or tail.first >= cut, "the tail still holds dropped records"
        for a, b in reads:
            first, last = sorted((cut + a % (count - cut + 1), cut + b % (count - cut + 1)))
            assert await store.read(generation, first, last) == b"".join(payloads[first:last])


@settings(max_examples=200, deadline=None)
@given(
    batches,
    st.sampled_from([1, 100, 1000, 5000]),
    st.sampled_from([64, 2000, 10**6]),
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), max_size=20),
    st.integers(0, 500),
)
def test_reads_match_the_records(
    sizes: list[list[int]], per_stream: int, total: int, reads: list[tuple[int, int]], cut: int
) -> None:
    asyncio.run(exercise(sizes, per_stream, total, reads, cut))


def test_a_stream_installed_past_its_first_records_is_numbered_like_its_engine() -> None:
    """A region replica installs a stream whose start the origin no longer keeps: created empty,
    then cut before record 1 (origin/embed.py install). Its appends are records 1, 2, ... in the
    engine; the tail must number them the same, or it answers a record with its successor's bytes."""

    async def run() -> None:
        store = TailCachedStore(MemoryStore(), total_bytes=10**6)
        await store.open()
        generation = await store.allocate_generation()
        await store.create(StreamConfig(generation, "s", "application/octet-stream", None, None, 0), [])
        await store.drop_before(generation, 1, 500)
        await store.append(generation, [Record(b"first")])
        await store.append(generation, [Record(b"second")])
        assert await store.read(generation, 1, 2) == b"first"
        assert await store.read(generation, 2, 3) == b"second"
        assert await store.read(generation, 1, 3) == b"firstsecond"

    asyncio.run(run())
