"""A format 1 data directory (`log` of framed records) is upgraded in place when a FileStore opens it.

Each test builds the old layout byte by byte (a version 1 manifest and a log written with
log_v1.encode), as an origin of an earlier release left it, then opens a FileStore on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from plugin_streams.origin.storage import FileStore, LoadedStream, Record, StreamConfig
from plugin_streams.origin.storage.config_fields import config_to_fields
from plugin_streams.origin.storage.file import log_v1
from plugin_streams.shared.producer import ProducerState, ProducerTuple

RECORDS = [
    Record(b"alpha", producer=ProducerTuple("p", 0, 0), written_ms=1_700_000_000_001),
    Record(b"", stream_seq="\udcff-seq"),  # a lone surrogate, as the protocol allows
    Record(b"bravo" * 1000, producer=ProducerTuple("\u751f\u4ea7\u8005", 3, 9), stream_seq="002"),
    Record(b"charlie", closed=True, producer=ProducerTuple("p", 0, 1)),
]
ACCESS_MS = 1_700_000_123_456


def old_stream(root: Path, generation: int, records: list[Record], *, log: list[object] | None = None) -> Path:
    """A stream directory exactly as format 1 wrote it."""
    directory = root / "streams" / f"{generation:016d}"
    directory.mkdir(parents=True)
    config = StreamConfig(generation, f"s{generation}", "application/octet-stream", None, None, 1_700_000_000_000)
    manifest = {"version": 1, **config_to_fields(config), "log": log or [0, 0, None]}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    name = "log" if log is None or log[0] == 0 else f"log.{log[0]}"
    (directory / name).write_bytes(b"".join(log_v1.encode(r)[0] + r.payload for r in records))
    os.utime(directory / "manifest.json", ns=(ACCESS_MS * 1_000_000, ACCESS_MS * 1_000_000))
    return directory


async def open_store(root: Path) -> tuple[FileStore, dict[int, LoadedStream]]:
    store = FileStore(str(root), io_threads=2)
    return store, {item.config.generation: item for item in await store.open()}


def files_and_version(directory: Path) -> tuple[list[str], int]:
    return sorted(p.name for p in directory.iterdir()), json.loads((directory / "manifest.json").read_text())["version"]


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def assert_upgraded(store: FileStore, loaded: LoadedStream, directory: Path, records: list[Record]) -> None:
    assert files_and_version(directory) == (["data", "index", "manifest.json"], 2)
    assert loaded.last_access_ms == ACCESS_MS
    summary = loaded.summary
    assert list(summary.sizes) == [len(r.payload) for r in records]
    assert list(summary.times) == [r.written_ms or 0 for r in records]
    producers = {r.producer.producer_id: ProducerState(r.producer.epoch, r.producer.seq) for r in records if r.producer}
    assert summary.producers == producers
    seqs = [r.stream_seq for r in records if r.stream_seq is not None]
    assert summary.stream_seq == (seqs[-1] if seqs else None)
    assert summary.closed == any(r.closed for r in records)
    generation = loaded.config.generation
    assert await store.read(generation, 0, len(records)) == b"".join(r.payload for r in records)
    for i in range(len(records)):
        assert await store.read(generation, i, i + 1) == records[i].payload


async def test_old_stream_is_upgraded_and_reads_the_same(tmp_path: Path) -> None:
    directory = old_stream(tmp_path, 7, RECORDS)
    store, loaded = await open_store(tmp_path)
    try:
        await assert_upgraded(store, loaded[7], directory, RECORDS)
        assert await store.allocate_generation() > 7
    finally:
        await store.close()
    data, index = (directory / "data").read_bytes(), (directory / "index").read_bytes()
    store, loaded = await open_store(tmp_path)  # the upgrade never runs over its own output
    try:
        assert store.discarded_bytes == 0
        assert ((directory / "data").read_bytes(), (directory / "index").read_bytes()) == (data, index)
        await assert_upgraded(store, loaded[7], directory, RECORDS)
        await store.append(7, [Record(b"after", producer=ProducerTuple("p", 0, 2))])
    finally:
        await store.close()
    store, loaded = await open_store(tmp_path)
    try:
        after = Record(b"after", producer=ProducerTuple("p", 0, 2))
        await assert_upgraded(store, loaded[7], directory, [*RECORDS, after])
    finally:
        await store.close()


async def test_torn_old_log_loses_only_its_torn_tail(tmp_path: Path) -> None:
    directory = old_stream(tmp_path, 3, RECORDS)
    append_bytes(directory / "log", log_v1.encode(Record(b"torn"))[0])  # a header without its payload
    store, loaded = await open_store(tmp_path)
    try:
        await assert_upgraded(store, loaded[3], directory, RECORDS)
    finally:
        await store.close()


async def test_upgrade_interrupted_before_its_commit_runs_again(tmp_path: Path) -> None:
    directory = old_stream(tmp_path, 5, RECORDS)
    (directory / "data").write_bytes(b"half")  # what a crash in the middle of an upgrade leaves
    (directory / "index").write_bytes(b"\x01\x02")
    store, loaded = await open_store(tmp_path)
    try:
        await assert_upgraded(store, loaded[5], directory, RECORDS)
    finally:
        await store.close()


async def test_old_log_left_after_the_commit_is_removed(tmp_path: Path) -> None:
    directory = old_stream(tmp_path, 6, RECORDS)
    old_log = (directory / "log").read_bytes()
    store, _ = await open_store(tmp_path)
    await store.close()
    (directory / "log").write_bytes(old_log)  # the crash came between the manifest and the unlink
    store, loaded = await open_store(tmp_path)
    try:
        await assert_upgraded(store, loaded[6], directory, RECORDS)
    finally:
        await store.close()


async def test_compacted_old_stream_keeps_its_numbering(tmp_path: Path) -> None:
    # Retention had dropped 10 records (positions before 500) and written log.2.
    directory = old_stream(tmp_path, 9, RECORDS, log=[2, 10, 500])
    store, loaded = await open_store(tmp_path)
    try:
        assert (loaded[9].first_record, loaded[9].first_position) == (10, 500)
        assert files_and_version(directory) == (["data.2", "index.2", "manifest.json"], 2)
        assert await store.read(9, 10, 14) == b"".join(r.payload for r in RECORDS)
        assert await store.read(9, 12, 13) == RECORDS[2].payload
    finally:
        await store.close()


@pytest.mark.parametrize("count", [0, 1, 5000])
async def test_upgrade_of_any_length(tmp_path: Path, count: int) -> None:
    records = [Record(f"record {i}".encode(), written_ms=1_700_000_000_000 + i) for i in range(count)]
    directory = old_stream(tmp_path, 2, records)
    store, loaded = await open_store(tmp_path)
    try:
        await assert_upgraded(store, loaded[2], directory, records)
    finally:
        await store.close()
