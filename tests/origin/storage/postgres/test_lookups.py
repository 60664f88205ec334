"""StreamLookups: a long stream is loaded and caught up the same whether decoded on the loop or in a thread."""

from __future__ import annotations

import pytest

from plugin_streams.origin.storage import Record, StreamConfig
from plugin_streams.origin.storage.postgres import lookups
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.shared.producer import ProducerTuple

BATCHES = 300  # above DECODE_ON_LOOP: the thread path


async def test_a_long_stream_decodes_the_same_off_the_loop(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BATCHES > lookups.DECODE_ON_LOOP
    store = PostgresStore(postgres_dsn, pool_size=2)
    await store.prepare()
    try:
        generation = await store.allocate_generation()
        await store.create(StreamConfig(generation, "long", "text/plain", None, None, 0), [])
        for i in range(BATCHES):
            producer = ProducerTuple(f"p{i % 3}", 0, i // 3)
            await store.append(generation, [Record(b"x" * (i % 7), producer=producer, written_ms=i)])
        threaded = await store.load(generation)
        _, since_threaded = await store.records_since(generation, 5)
        monkeypatch.setattr(lookups, "DECODE_ON_LOOP", BATCHES + 1)
        on_loop = await store.load(generation)
        _, since_on_loop = await store.records_since(generation, 5)
    finally:
        await store.close()
    assert threaded is not None and on_loop is not None
    assert list(threaded.summary.sizes) == [i % 7 for i in range(BATCHES)] == list(on_loop.summary.sizes)
    assert list(threaded.summary.times) == list(range(BATCHES)) == list(on_loop.summary.times)
    assert threaded.summary.producers == on_loop.summary.producers and len(threaded.summary.producers) == 3
    assert since_threaded == since_on_loop and len(since_threaded) == BATCHES - 5
