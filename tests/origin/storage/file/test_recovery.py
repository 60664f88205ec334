"""FileStore start-up recovery: torn and corrupt tails, unfinished creates, the trash.

Each test writes through a real FileStore, damages the files the way a crash or a bad disk
would, then opens a new FileStore on the same directory, as a restarted origin does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugin_streams.origin.storage import FileStore, LoadedStream, Record, StreamConfig
from plugin_streams.origin.storage.file import segment
from plugin_streams.shared.producer import ProducerState, ProducerTuple

RECORDS = [
    Record(b"alpha", producer=ProducerTuple("p", 0, 0)),
    Record(b"bravo" * 10, producer=ProducerTuple("p", 0, 1), stream_seq="002"),
    Record(b"charlie", producer=ProducerTuple("p", 0, 2), stream_seq="003"),
]


def record_ends(records: list[Record]) -> list[int]:
    """Where each record ends in a log holding exactly `records`."""
    ends, pos = [], 0
    for record in records:
        pos += segment.encode(record)[1] + len(record.payload)
        ends.append(pos)
    return ends


ENDS = record_ends(RECORDS)


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.stores: list[FileStore] = []

    async def open(self) -> tuple[FileStore, dict[int, LoadedStream]]:
        store = FileStore(str(self.root), io_threads=2)
        self.stores.append(store)
        loaded = await store.open()
        return store, {item.config.generation: item for item in loaded}

    async def restart(self) -> tuple[FileStore, dict[int, LoadedStream]]:
        await self.stores[-1].close()
        return await self.open()

    def log(self, generation: int) -> Path:
        return self.root / "streams" / f"{generation:016d}" / "log"

    async def stream_with(self, records: list[Record], path: str = "s") -> int:
        store = self.stores[-1]
        generation = await store.allocate_generation()
        config = StreamConfig(generation, path, "application/octet-stream", None, None, 1_700_000_000_000)
        await store.create(config, records[:1])
        if records[1:]:
            await store.append(generation, records[1:])
        return generation

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path / "data")
    await harness.open()
    yield harness
    await harness.close()


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def payloads(records: list[Record]) -> bytes:
    return b"".join(r.payload for r in records)


async def assert_holds(store: FileStore, loaded: LoadedStream, records: list[Record]) -> None:
    summary = loaded.summary
    assert list(summary.sizes) == [len(r.payload) for r in records]
    producers = {r.producer.producer_id: ProducerState(r.producer.epoch, r.producer.seq) for r in records if r.producer}
    assert summary.producers == producers
    seqs = [r.stream_seq for r in records if r.stream_seq is not None]
    assert summary.stream_seq == (seqs[-1] if seqs else None)
    assert await store.read(loaded.config.generation, 0, len(records)) == payloads(records)


async def test_intact_log_is_kept_whole(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    assert harness.log(generation).stat().st_size == ENDS[-1]
    store, loaded = await harness.restart()
    assert store.discarded_bytes == 0
    await assert_holds(store, loaded[generation], RECORDS)


@pytest.mark.parametrize("cut", [1, 5, 11, ENDS[2] - ENDS[1] - 1])
async def test_torn_tail_is_cut_back_to_the_valid_prefix(harness: Harness, cut: int) -> None:
    generation = await harness.stream_with(RECORDS)
    log = harness.log(generation)
    await harness.stores[-1].close()
    os.truncate(log, ENDS[-1] - cut)  # the last record was half written

    store, loaded = await harness.restart()
    assert store.discarded_bytes == ENDS[2] - cut - ENDS[1]
    assert log.stat().st_size == ENDS[1]
    assert store.disk_bytes() == ENDS[1]
    # Producer state and Stream-Seq come from the surviving records only (decide, then commit).
    await assert_holds(store, loaded[generation], RECORDS[:2])
    assert loaded[generation].summary.producers == {"p": ProducerState(0, 1)}
    assert loaded[generation].summary.stream_seq == "002"


async def test_second_recovery_changes_nothing(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    log = harness.log(generation)
    await harness.stores[-1].close()
    append_bytes(log, b"\x13\x37" * 50)
    os.truncate(log, log.stat().st_size - 3)

    store, first = await harness.restart()
    assert store.discarded_bytes == 97
    after_first = log.read_bytes()
    mtime = log.stat().st_mtime_ns

    store, second = await harness.restart()
    assert store.discarded_bytes == 0
    assert log.read_bytes() == after_first
    assert log.stat().st_mtime_ns == mtime  # not even rewritten
    assert list(second[generation].summary.sizes) == list(first[generation].summary.sizes)
    await assert_holds(store, second[generation], RECORDS)


async def test_flipped_byte_keeps_only_the_records_before_it(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    log = harness.log(generation)
    await harness.stores[-1].close()
    data = bytearray(log.read_bytes())
    data[ENDS[0] + 12] ^= 0x40  # inside the second record
    log.write_bytes(bytes(data))

    store, loaded = await harness.restart()
    assert store.discarded_bytes == ENDS[-1] - ENDS[0]
    assert log.read_bytes() == bytes(data[: ENDS[0]])
    await assert_holds(store, loaded[generation], RECORDS[:1])


async def test_garbage_after_the_last_record(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    log = harness.log(generation)
    await harness.stores[-1].close()
    append_bytes(log, b"\x00" * 4096)  # a zero-filled tail, as after a crash on some filesystems

    store, loaded = await harness.restart()
    assert store.discarded_bytes == 4096
    assert log.stat().st_size == ENDS[-1]
    await assert_holds(store, loaded[generation], RECORDS)


async def test_appends_after_recovery_follow_the_valid_prefix(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    log = harness.log(generation)
    await harness.stores[-1].close()
    os.truncate(log, ENDS[-1] - 2)

    store, _ = await harness.restart()
    more = [Record(b"delta", producer=ProducerTuple("p", 0, 2)), Record(b"", closed=True)]
    await store.append(generation, more)
    store, loaded = await harness.restart()
    assert store.discarded_bytes == 0
    await assert_holds(store, loaded[generation], [*RECORDS[:2], *more])
    assert loaded[generation].summary.closed


async def test_discarded_bytes_add_up_across_streams(harness: Harness) -> None:
    a = await harness.stream_with(RECORDS, path="a")
    b = await harness.stream_with(RECORDS, path="b")
    c = await harness.stream_with(RECORDS, path="c")
    await harness.stores[-1].close()
    os.truncate(harness.log(a), ENDS[-1] - 1)
    append_bytes(harness.log(b), b"junk")

    store, loaded = await harness.restart()
    assert store.discarded_bytes == (ENDS[2] - 1 - ENDS[1]) + 4
    assert store.disk_bytes() == sum(harness.log(g).stat().st_size for g in (a, b, c)) == ENDS[1] + 2 * ENDS[2]
    await assert_holds(store, loaded[a], RECORDS[:2])
    await assert_holds(store, loaded[b], RECORDS)
    await assert_holds(store, loaded[c], RECORDS)


async def test_log_cut_to_nothing(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    os.truncate(harness.log(generation), ENDS[0] - 1)

    store, loaded = await harness.restart()
    assert store.discarded_bytes == ENDS[0] - 1
    assert harness.log(generation).stat().st_size == 0
    await assert_holds(store, loaded[generation], [])


async def test_stream_directory_without_manifest_is_removed(harness: Harness) -> None:
    kept = await harness.stream_with(RECORDS[:1])
    await harness.stores[-1].close()
    unfinished = harness.root / "streams" / f"{kept + 1:016d}"
    unfinished.mkdir()
    (unfinished / "log").write_bytes(segment.encode(Record(b"orphan"))[0] + b"orphan")
    (unfinished / "manifest.json.tmp").write_bytes(b"{")  # the create died before its rename

    store, loaded = await harness.restart()
    assert not unfinished.exists()
    assert set(loaded) == {kept}
    assert await store.allocate_generation() > kept
    assert await store.read(kept, 0, 1) == RECORDS[0].payload


async def test_leftover_manifest_temp_file_is_harmless(harness: Harness) -> None:
    # A replace_config that died before its rename leaves manifest.json.tmp beside the old one.
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    (harness.log(generation).parent / "manifest.json.tmp").write_bytes(b'{"version": 1, "trunc')

    store, loaded = await harness.restart()
    assert loaded[generation].config.path == "s"
    assert not loaded[generation].config.soft_deleted
    await assert_holds(store, loaded[generation], RECORDS)


async def test_trash_is_emptied_at_open(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    trash = harness.root / "trash"
    for name in ("0000000000000041", "0000000000000042"):
        (trash / name).mkdir(parents=True)
        (trash / name / "log").write_bytes(b"x" * 100)
        (trash / name / "manifest.json").write_bytes(b"{}")

    _, loaded = await harness.restart()
    assert trash.is_dir() and list(trash.iterdir()) == []
    assert set(loaded) == {generation}  # nothing in the trash comes back


async def test_removed_stream_leaves_nothing_behind(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].remove(generation)
    assert not harness.log(generation).parent.exists()
    assert list((harness.root / "trash").iterdir()) == []
    _, loaded = await harness.restart()
    assert loaded == {}


async def test_removed_generation_is_not_reused(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].remove(generation)
    store, _ = await harness.restart()
    assert await store.allocate_generation() > generation
