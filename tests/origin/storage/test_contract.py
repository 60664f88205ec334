"""The storage contract: one abstract suite, run against every engine (STYLE.md conventions 3, 12).

`StoreContract` holds the tests; they see a `store` (opened) and `reopen`, which simulates a
restart and returns the new store with what its `open()` recovered. `TestStoreContract` binds
the suite to every engine through the parametrized `engine` fixture. MemoryStore is the oracle:
an engine is done when this suite passes for it.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from plugin_streams.origin.storage import (
    FileStore,
    ForkLink,
    LoadedStream,
    MemoryStore,
    Record,
    Store,
    StreamConfig,
    StreamMissing,
)
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.storage.tail_cache import TailCachedStore
from plugin_streams.shared.parse import Expiry
from plugin_streams.shared.producer import ProducerState, ProducerTuple

CREATED_MS = 1_700_000_000_000
Reopen = Callable[[], Awaitable[tuple[Store, dict[int, LoadedStream]]]]


class Engine:
    """How to make, restart and dispose of one engine's store."""

    name: str

    def make(self) -> Store:
        raise NotImplementedError

    async def restart(self, store: Store) -> Store:
        raise NotImplementedError


class MemoryEngine(Engine):
    name = "memory"

    def make(self) -> Store:
        return MemoryStore()

    async def restart(self, store: Store) -> Store:
        assert isinstance(store, MemoryStore)
        return store.reopen()


class FileEngine(Engine):
    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def make(self) -> Store:
        return FileStore(str(self.directory), io_threads=2)

    async def restart(self, store: Store) -> Store:
        await store.close()
        return self.make()


class TailCachedFileEngine(FileEngine):
    """The file engine behind the tail cache, as the origin runs it (a tiny budget, so both
    the cached and the uncached read paths are exercised)."""

    name = "tail-cached-file"

    def make(self) -> Store:
        return TailCachedStore(FileStore(str(self.directory), io_threads=2), total_bytes=4096, per_stream_bytes=1024)


class PostgresEngine(Engine):
    """A fresh database of the session's PostgreSQL server; a restart is a new store (and pool)."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url

    def make(self) -> Store:
        return PostgresStore(self.url, pool_size=4)

    async def restart(self, store: Store) -> Store:
        await store.close()
        return self.make()


@pytest.fixture(params=["memory", "file", "tail-cached-file", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "postgres":
        return PostgresEngine(request.getfixturevalue("postgres_dsn"))
    if request.param == "memory":
        return MemoryEngine()
    if request.param == "tail-cached-file":
        return TailCachedFileEngine(tmp_path / "data")
    return FileEngine(tmp_path / "data")


class Session:
    """The store currently in use; every store it opened is closed at teardown."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stores: list[Store] = []

    async def start(self) -> Store:
        store = self.engine.make()
        self.stores.append(store)
        assert await store.open() == []
        return store

    async def reopen(self) -> tuple[Store, dict[int, LoadedStream]]:
        store = await self.engine.restart(self.stores[-1])
        self.stores.append(store)
        loaded = await store.open()
        by_generation = {item.config.generation: item for item in loaded}
        assert len(by_generation) == len(loaded)
        return store, by_generation

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


@pytest.fixture
async def session(engine: Engine) -> AsyncIterator[Session]:
    session = Session(engine)
    yield session
    await session.close()


@pytest.fixture
async def store(session: Session) -> Store:
    return await session.start()


@pytest.fixture
def reopen(session: Session, store: Store) -> Reopen:
    return session.reopen


def config_for(generation: int, path: str = "s", **changes: object) -> StreamConfig:
    config = StreamConfig(
        generation=generation,
        path=path,
        content_type="application/octet-stream",
        ttl_seconds=None,
        expires=None,
        created_ms=CREATED_MS,
    )
    return dataclasses.replace(config, **changes)


async def new_stream(store: Store, records: list[Record] | None = None, **changes: object) -> int:
    generation = await store.allocate_generation()
    await store.create(config_for(generation, **changes), records or [])
    return generation


async def read_all(store: Store, generation: int, count: int) -> bytes:
    return await store.read(generation, 0, count)


class StoreContract:
    """Every engine must pass these. Subclasses bind `store` and `reopen` to an engine."""

    # -- open and generations ---------------------------------------------------------------

    async def test_open_on_empty(self, store: Store, reopen: Reopen) -> None:
        _, loaded = await reopen()
        assert loaded == {}

    async def test_open_is_idempotent(self, store: Store) -> None:
        generation = await new_stream(store, [Record(b"abc")])
        first = await store.open()
        second = await store.open()
        assert [(s.config, list(s.summary.sizes)) for s in first] == [(s.config, list(s.summary.sizes)) for s in second]
        assert await store.read(generation, 0, 1) == b"abc"

    async def test_generations_strictly_increase_and_never_repeat(self, store: Store, reopen: Reopen) -> None:
        seen = [await store.allocate_generation() for _ in range(3)]
        store, _ = await reopen()
        seen += [await store.allocate_generation() for _ in range(3)]
        store, _ = await reopen()
        store, _ = await reopen()  # twice in a row, nothing allocated in between
        seen += [await store.allocate_generation() for _ in range(2)]
        assert all(0 < a < b for a, b in itertools.pairwise(seen)), seen

    async def test_generations_after_a_created_stream(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store)
        store, loaded = await reopen()
        assert set(loaded) == {generation}
        assert await store.allocate_generation() > generation

    # -- create, append, read ---------------------------------------------------------------

    async def test_create_with_records_then_read_every_range(self, store: Store, reopen: Reopen) -> None:
        payloads = [b"a", b"bc", b"", b"def", b"\x00\xff"]
        generation = await new_stream(store, [Record(p) for p in payloads])

        async def check(store: Store) -> None:
            for first in range(len(payloads) + 1):
                for last in range(first, len(payloads) + 1):
                    assert await store.read(generation, first, last) == b"".join(payloads[first:last]), (first, last)

        await check(store)
        store, loaded = await reopen()
        assert list(loaded[generation].summary.sizes) == [len(p) for p in payloads]
        await check(store)

    async def test_create_without_records(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store)
        assert await store.read(generation, 0, 0) == b""
        store, loaded = await reopen()
        summary = loaded[generation].summary
        assert (list(summary.sizes), summary.producers, summary.stream_seq, summary.closed) == ([], {}, None, False)

    async def test_append_in_order(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store, [Record(b"0")])
        await store.append(generation, [Record(b"1")])
        await store.append(generation, [Record(b"22"), Record(b"333")])
        await store.append(generation, [])
        await store.append(generation, [Record(b"4444")])
        assert await read_all(store, generation, 5) == b"0122333" + b"4444"
        assert await store.read(generation, 2, 4) == b"22333"
        store, loaded = await reopen()
        assert list(loaded[generation].summary.sizes) == [1, 1, 2, 3, 4]
        assert await read_all(store, generation, 5) == b"01223334444"
        await store.append(generation, [Record(b"5")])  # appends continue after a restart
        assert await store.read(generation, 4, 6) == b"44445"

    async def test_streams_are_independent(self, store: Store, reopen: Reopen) -> None:
        a = await new_stream(store, [Record(b"a0")], path="a")
        b = await new_stream(store, [Record(b"b0")], path="b")
        await store.append(a, [Record(b"a1")])
        await store.append(b, [Record(b"b1"), Record(b"b2")])
        await store.append(a, [Record(b"a2")])
        store, loaded = await reopen()
        assert (loaded[a].config.path, loaded[b].config.path) == ("a", "b")
        assert await read_all(store, a, 3) == b"a0a1a2"
        assert await read_all(store, b, 3) == b"b0b1b2"

    async def test_summary_after_reopen(self, store: Store, reopen: Reopen) -> None:
        p = ProducerTuple("p", 1, 0)
        generation = await new_stream(store, [Record(b"x", producer=p, stream_seq="001")])
        await store.append(
            generation,
            [
                Record(b"yy", producer=ProducerTuple("q", 0, 0)),
                Record(b"zzz", producer=ProducerTuple("p", 1, 1), stream_seq="002"),
                Record(b"w"),  # no producer, no seq: neither is forgotten
            ],
        )
        await store.append(generation, [Record(b"end", closed=True, producer=ProducerTuple("p", 2, 0))])
        store, loaded = await reopen()
        summary = loaded[generation].summary
        assert list(summary.sizes) == [1, 2, 3, 1, 3]
        assert summary.producers == {"p": ProducerState(2, 0), "q": ProducerState(0, 0)}
        assert summary.stream_seq == "002"
        assert summary.closed is True
        assert summary.closed_by == ProducerTuple("p", 2, 0)

    async def test_closed_without_producer(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store, [Record(b"x")])
        await store.append(generation, [Record(b"", closed=True)])
        store, loaded = await reopen()
        summary = loaded[generation].summary
        assert (summary.closed, summary.closed_by) == (True, None)

    async def test_created_closed(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store, [Record(b"final", closed=True)])
        store, loaded = await reopen()
        assert loaded[generation].summary.closed
        assert await store.read(generation, 0, 1) == b"final"

    async def test_close_only_records_count_with_size_zero(self, store: Store, reopen: Reopen) -> None:
        producer = ProducerTuple("p", 0, 3)
        generation = await new_stream(store, [Record(b"data")])
        await store.append(generation, [Record(b"", closed=True, producer=producer)])
        assert await store.read(generation, 1, 2) == b""
        assert await store.read(generation, 0, 2) == b"data"
        store, loaded = await reopen()
        summary = loaded[generation].summary
        assert list(summary.sizes) == [4, 0]
        assert summary.closed and summary.closed_by == producer
        assert summary.producers == {"p": ProducerState(0, 3)}
        assert await store.read(generation, 1, 2) == b""

    async def test_large_payload_round_trip(self, store: Store, reopen: Reopen) -> None:
        big = os.urandom(1024) * (5 * 1024)  # 5 MiB
        generation = await new_stream(store, [Record(b"head")])
        await store.append(generation, [Record(big), Record(b"tail")])
        assert await store.read(generation, 1, 2) == big
        store, loaded = await reopen()
        assert list(loaded[generation].summary.sizes) == [4, len(big), 4]
        assert await store.read(generation, 0, 3) == b"head" + big + b"tail"

    @pytest.mark.parametrize(
        "producer_id",
        ["\u751f\u4ea7\u8005-\U0001f680", "caf\u00e9", "x" * 256, "a\x00b", "lone-\ud800"],
        ids=["cjk-emoji", "latin1", "long", "nul", "lone-surrogate"],
    )
    async def test_unicode_producer_id_and_stream_seq(self, store: Store, reopen: Reopen, producer_id: str) -> None:
        producer = ProducerTuple(producer_id, 2**53 - 1, 2**53 - 1)
        generation = await new_stream(store, [Record(b"x", producer=producer, stream_seq="\u00e9-\U0001f680")])
        store, loaded = await reopen()
        summary = loaded[generation].summary
        assert summary.producers == {producer_id: ProducerState(2**53 - 1, 2**53 - 1)}
        assert summary.stream_seq == "\u00e9-\U0001f680"

    # -- configuration ----------------------------------------------------------------------

    async def test_config_round_trip(self, store: Store, reopen: Reopen) -> None:
        source = await new_stream(store, [Record(b"abc")], path="src")
        generation = await store.allocate_generation()
        config = config_for(
            generation,
            path="dir/fork-\u00e9",
            content_type="application/json; charset=utf-8",
            ttl_seconds=3600,
            expires=Expiry(1_893_456_000_000, "2030-01-01T00:00:00Z"),
            fork=ForkLink(source, "src", 3, "0000000000000001_0000000000000003", 2),
        )
        await store.create(config, [])
        other = await new_stream(store, path="plain", fork=ForkLink(source, "src", 0, None, 0))
        store, loaded = await reopen()
        assert loaded[generation].config == config
        assert loaded[other].config.fork == ForkLink(source, "src", 0, None, 0)
        assert loaded[source].config == config_for(source, path="src")

    async def test_replace_config_persists(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store, [Record(b"kept")])
        config = config_for(generation, soft_deleted=True)
        await store.replace_config(config)
        store, loaded = await reopen()
        assert loaded[generation].config == config
        assert loaded[generation].config.soft_deleted
        assert await store.read(generation, 0, 1) == b"kept"  # data survives a soft delete

    async def test_replace_config_of_a_missing_stream(self, store: Store) -> None:
        with pytest.raises(StreamMissing):
            await store.replace_config(config_for(12345))

    # -- removal ----------------------------------------------------------------------------

    async def test_remove(self, store: Store, reopen: Reopen) -> None:
        gone = await new_stream(store, [Record(b"x")], path="gone")
        kept = await new_stream(store, [Record(b"y")], path="kept")
        await store.remove(gone)
        with pytest.raises(StreamMissing):
            await store.read(gone, 0, 1)
        with pytest.raises(StreamMissing):
            await store.append(gone, [Record(b"z")])
        with pytest.raises(StreamMissing):
            await store.replace_config(config_for(gone))
        store, loaded = await reopen()
        assert set(loaded) == {kept}
        with pytest.raises(StreamMissing):
            await store.read(gone, 0, 1)
        assert await store.read(kept, 0, 1) == b"y"
        assert await store.allocate_generation() not in (gone, kept)

    async def test_remove_is_idempotent(self, store: Store) -> None:
        generation = await new_stream(store)
        await store.remove(generation)
        await store.remove(generation)
        await store.remove(987654)

    async def test_unknown_generation(self, store: Store) -> None:
        with pytest.raises(StreamMissing):
            await store.read(424242, 0, 1)
        with pytest.raises(StreamMissing):
            await store.append(424242, [Record(b"x")])

    async def test_disk_bytes_follow_the_data(self, store: Store, reopen: Reopen) -> None:
        empty = store.disk_bytes()
        assert empty >= 0
        generation = await new_stream(store, [Record(b"x" * 1000)])
        grown = store.disk_bytes()
        assert grown >= empty
        await store.append(generation, [Record(b"y" * 1000)])
        assert store.disk_bytes() >= grown
        store, _ = await reopen()
        assert store.disk_bytes() >= grown
        await store.remove(generation)
        assert store.disk_bytes() == empty

    # -- access times -----------------------------------------------------------------------

    async def test_touch_and_flush_survive_reopen(self, store: Store, reopen: Reopen) -> None:
        a = await new_stream(store, path="a")
        b = await new_stream(store, path="b")
        store.touch(a, CREATED_MS + 5_000)
        store.touch(a, CREATED_MS + 9_000)  # the latest touch wins
        store.touch(b, CREATED_MS + 7_000)
        store.touch(999_999, CREATED_MS)  # unknown: ignored
        await store.flush_access_times()
        store, loaded = await reopen()
        assert loaded[a].last_access_ms == CREATED_MS + 9_000
        assert loaded[b].last_access_ms == CREATED_MS + 7_000

    async def test_never_touched_stream_was_last_accessed_at_creation(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store)
        store, loaded = await reopen()
        assert loaded[generation].last_access_ms == CREATED_MS

    async def test_replace_config_keeps_the_last_access(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store)
        store.touch(generation, CREATED_MS + 60_000)
        await store.flush_access_times()
        await store.replace_config(config_for(generation, soft_deleted=True))
        store, loaded = await reopen()
        assert loaded[generation].last_access_ms == CREATED_MS + 60_000

    async def test_touch_after_remove_is_harmless(self, store: Store, reopen: Reopen) -> None:
        generation = await new_stream(store)
        store.touch(generation, CREATED_MS + 1)
        await store.remove(generation)
        store.touch(generation, CREATED_MS + 2)
        await store.flush_access_times()
        store, loaded = await reopen()
        assert loaded == {}


class TestStoreContract(StoreContract):
    """The suite, once per engine of the `engine` fixture."""
