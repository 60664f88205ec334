"""FileStore start-up recovery: torn and corrupt tails, unfinished creates, the trash.

Each test writes through a real FileStore, damages the files the way a crash or a bad disk
would, then opens a new FileStore on the same directory, as a restarted origin does. A stream
made by `stream_with` has one batch per record, so DATA_ENDS and INDEX_ENDS give where each
record's payload and each batch's index entry end.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugin_streams.origin.storage import FileStore, LoadedStream, Record, StreamConfig
from plugin_streams.origin.storage.file import batch_index
from plugin_streams.shared.producer import ProducerState, ProducerTuple

RECORDS = [
    Record(b"alpha", producer=ProducerTuple("p", 0, 0)),
    Record(b"bravo" * 10, producer=ProducerTuple("p", 0, 1), stream_seq="002"),
    Record(b"charlie", producer=ProducerTuple("p", 0, 2), stream_seq="003"),
]


def file_ends(records: list[Record]) -> tuple[list[int], list[int]]:
    """Where each payload ends in the data file, and each one-record batch in the index file."""
    data_ends, index_ends, data, index = [], [], 0, 0
    for record in records:
        index += len(batch_index.encode(data, [record]))
        data += len(record.payload)
        data_ends.append(data)
        index_ends.append(index)
    return data_ends, index_ends


DATA_ENDS, INDEX_ENDS = file_ends(RECORDS)


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

    def data(self, generation: int) -> Path:
        return self.root / "streams" / f"{generation:016d}" / "data"

    def index(self, generation: int) -> Path:
        return self.root / "streams" / f"{generation:016d}" / "index"

    async def stream_with(self, records: list[Record], path: str = "s") -> int:
        store = self.stores[-1]
        generation = await store.allocate_generation()
        config = StreamConfig(generation, path, "application/octet-stream", None, None, 1_700_000_000_000)
        await store.create(config, records[:1])
        for record in records[1:]:
            await store.append(generation, [record])
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


async def test_intact_files_are_kept_whole(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    assert harness.data(generation).stat().st_size == DATA_ENDS[-1]
    assert harness.index(generation).stat().st_size == INDEX_ENDS[-1]
    store, loaded = await harness.restart()
    assert store.discarded_bytes == 0
    await assert_holds(store, loaded[generation], RECORDS)


def assert_cut_back_to(harness: Harness, generation: int, records: int) -> None:
    assert harness.data(generation).stat().st_size == (DATA_ENDS[records - 1] if records else 0)
    assert harness.index(generation).stat().st_size == (INDEX_ENDS[records - 1] if records else 0)


@pytest.mark.parametrize("cut", [1, 5, DATA_ENDS[2] - DATA_ENDS[1] - 1])
async def test_torn_data_tail_is_cut_back_to_the_valid_prefix(harness: Harness, cut: int) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    os.truncate(harness.data(generation), DATA_ENDS[-1] - cut)  # the last payload was half written

    store, loaded = await harness.restart()
    # The last batch goes: its payloads from the data file, its entry from the index.
    assert store.discarded_bytes == (DATA_ENDS[2] - cut - DATA_ENDS[1]) + (INDEX_ENDS[2] - INDEX_ENDS[1])
    assert_cut_back_to(harness, generation, 2)
    assert store.disk_bytes() == DATA_ENDS[1] + INDEX_ENDS[1]
    # Producer state and Stream-Seq come from the surviving records only (decide, then commit).
    await assert_holds(store, loaded[generation], RECORDS[:2])
    assert loaded[generation].summary.producers == {"p": ProducerState(0, 1)}
    assert loaded[generation].summary.stream_seq == "002"


@pytest.mark.parametrize("cut", [1, 4, 9, INDEX_ENDS[2] - INDEX_ENDS[1] - 1])
async def test_torn_index_tail_is_cut_back_to_the_valid_prefix(harness: Harness, cut: int) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    os.truncate(harness.index(generation), INDEX_ENDS[-1] - cut)  # the last entry was half written

    store, loaded = await harness.restart()
    assert store.discarded_bytes == (DATA_ENDS[2] - DATA_ENDS[1]) + (INDEX_ENDS[2] - cut - INDEX_ENDS[1])
    assert_cut_back_to(harness, generation, 2)
    await assert_holds(store, loaded[generation], RECORDS[:2])


async def test_entry_whose_payloads_never_arrived_is_dropped(harness: Harness) -> None:
    # The index reached the disk, the data file did not: the entry names bytes that are not there.
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    os.truncate(harness.data(generation), DATA_ENDS[1])

    store, loaded = await harness.restart()
    assert store.discarded_bytes == INDEX_ENDS[2] - INDEX_ENDS[1]
    assert_cut_back_to(harness, generation, 2)
    await assert_holds(store, loaded[generation], RECORDS[:2])


async def test_payloads_whose_entry_never_arrived_are_cut_off(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    append_bytes(harness.data(generation), b"written, never indexed")

    store, loaded = await harness.restart()
    assert store.discarded_bytes == len(b"written, never indexed")
    assert_cut_back_to(harness, generation, 3)
    await assert_holds(store, loaded[generation], RECORDS)


async def test_second_recovery_changes_nothing(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    for path in (harness.data(generation), harness.index(generation)):
        append_bytes(path, b"\x13\x37" * 50)
        os.truncate(path, path.stat().st_size - 3)

    store, first = await harness.restart()
    assert store.discarded_bytes == 2 * 97
    after_first = [harness.data(generation).read_bytes(), harness.index(generation).read_bytes()]
    mtimes = [harness.data(generation).stat().st_mtime_ns, harness.index(generation).stat().st_mtime_ns]

    store, second = await harness.restart()
    assert store.discarded_bytes == 0
    assert [harness.data(generation).read_bytes(), harness.index(generation).read_bytes()] == after_first
    assert [harness.data(generation).stat().st_mtime_ns, harness.index(generation).stat().st_mtime_ns] == mtimes
    assert list(second[generation].summary.sizes) == list(first[generation].summary.sizes)
    await assert_holds(store, second[generation], RECORDS)


@pytest.mark.parametrize("which", ["data", "index"])
async def test_flipped_byte_keeps_only_the_records_before_it(harness: Harness, which: str) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    path = harness.data(generation) if which == "data" else harness.index(generation)
    data = bytearray(path.read_bytes())
    data[(DATA_ENDS if which == "data" else INDEX_ENDS)[0] + 12] ^= 0x40  # inside the second record's bytes
    path.write_bytes(bytes(data))

    store, loaded = await harness.restart()
    assert store.discarded_bytes == DATA_ENDS[-1] - DATA_ENDS[0] + INDEX_ENDS[-1] - INDEX_ENDS[0]
    assert_cut_back_to(harness, generation, 1)
    await assert_holds(store, loaded[generation], RECORDS[:1])


@pytest.mark.parametrize("which", ["data", "index"])
async def test_zero_filled_tail(harness: Harness, which: str) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    # A zero-filled tail, as after a crash on some filesystems (the size reached the disk, the bytes not).
    append_bytes(harness.data(generation) if which == "data" else harness.index(generation), b"\x00" * 4096)

    store, loaded = await harness.restart()
    assert store.discarded_bytes == 4096
    assert_cut_back_to(harness, generation, 3)
    await assert_holds(store, loaded[generation], RECORDS)


async def test_appends_after_recovery_follow_the_valid_prefix(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    os.truncate(harness.data(generation), DATA_ENDS[-1] - 2)

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
    os.truncate(harness.data(a), DATA_ENDS[-1] - 1)
    append_bytes(harness.index(b), b"junk")

    store, loaded = await harness.restart()
    assert store.discarded_bytes == (DATA_ENDS[2] - 1 - DATA_ENDS[1]) + (INDEX_ENDS[2] - INDEX_ENDS[1]) + 4
    on_disk = sum(harness.data(g).stat().st_size + harness.index(g).stat().st_size for g in (a, b, c))
    assert store.disk_bytes() == on_disk == DATA_ENDS[1] + INDEX_ENDS[1] + 2 * (DATA_ENDS[2] + INDEX_ENDS[2])
    await assert_holds(store, loaded[a], RECORDS[:2])
    await assert_holds(store, loaded[b], RECORDS)
    await assert_holds(store, loaded[c], RECORDS)


async def test_files_cut_to_nothing(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].close()
    os.truncate(harness.index(generation), INDEX_ENDS[0] - 1)

    store, loaded = await harness.restart()
    assert store.discarded_bytes == DATA_ENDS[-1] + INDEX_ENDS[0] - 1
    assert_cut_back_to(harness, generation, 0)
    await assert_holds(store, loaded[generation], [])


async def test_stream_directory_without_manifest_is_removed(harness: Harness) -> None:
    kept = await harness.stream_with(RECORDS[:1])
    await harness.stores[-1].close()
    unfinished = harness.root / "streams" / f"{kept + 1:016d}"
    unfinished.mkdir()
    (unfinished / "data").write_bytes(b"orphan")
    (unfinished / "index").write_bytes(batch_index.encode(0, [Record(b"orphan")]))
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
    (harness.data(generation).parent / "manifest.json.tmp").write_bytes(b'{"version": 1, "trunc')

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
        (trash / name / "data").write_bytes(b"x" * 100)
        (trash / name / "manifest.json").write_bytes(b"{}")

    _, loaded = await harness.restart()
    assert trash.is_dir() and list(trash.iterdir()) == []
    assert set(loaded) == {generation}  # nothing in the trash comes back


async def test_removed_stream_leaves_nothing_behind(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].remove(generation)
    assert not harness.data(generation).parent.exists()
    assert list((harness.root / "trash").iterdir()) == []
    _, loaded = await harness.restart()
    assert loaded == {}


async def test_removed_generation_is_not_reused(harness: Harness) -> None:
    generation = await harness.stream_with(RECORDS)
    await harness.stores[-1].remove(generation)
    store, _ = await harness.restart()
    assert await store.allocate_generation() > generation
