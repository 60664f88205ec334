"""Retention compaction of the file engine: the kept records move to the next file number.

The cut may fall inside a batch (one group commit of several records): the kept part of that
batch is indexed again, the batches after it keep their checksums, and a restart reads exactly
the kept records with the numbering and positions they had.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from plugin_streams.origin.storage import FileStore, LoadedStream, Record, RecordsDropped, StreamConfig
from plugin_streams.shared.producer import ProducerState, ProducerTuple

BATCHES = [
    [Record(f"a{i}-".encode() * (i + 1), written_ms=1000 + i) for i in range(4)],
    [Record(b"b0", producer=ProducerTuple("p", 1, 0)), Record(b"b1" * 40, producer=ProducerTuple("p", 1, 1))],
    [Record(b"c0", producer=ProducerTuple("q", 0, 0), stream_seq="7"), Record(b"", closed=True)],
]
RECORDS = [record for batch in BATCHES for record in batch]


async def open_store(root: Path) -> tuple[FileStore, dict[int, LoadedStream]]:
    store = FileStore(str(root), io_threads=2)
    return store, {item.config.generation: item for item in await store.open()}


async def written(root: Path) -> tuple[FileStore, int]:
    store, _ = await open_store(root)
    generation = await store.allocate_generation()
    config = StreamConfig(generation, "s", "application/octet-stream", None, None, 1_700_000_000_000)
    await store.create(config, BATCHES[0])
    for batch in BATCHES[1:]:
        await store.append(generation, batch)
    return store, generation


def position_of(record: int) -> int:
    return sum(len(r.payload) for r in RECORDS[:record])


async def assert_kept(store: FileStore, generation: int, first: int) -> None:
    for i in range(first, len(RECORDS)):
        assert await store.read(generation, i, len(RECORDS)) == b"".join(r.payload for r in RECORDS[i:])
        assert await store.read(generation, i, i + 1) == RECORDS[i].payload
    if first:
        try:
            await store.read(generation, first - 1, first)
        except RecordsDropped:
            pass
        else:
            raise AssertionError("a dropped record was read")


async def test_cut_inside_a_batch_then_restart(tmp_path: Path) -> None:
    for cut in range(1, len(RECORDS) + 1):
        root = tmp_path / f"cut{cut}"
        store, generation = await written(root)
        await store.drop_before(generation, cut, position_of(cut))
        await assert_kept(store, generation, cut)
        before = store.disk_bytes()
        await store.close()

        store, loaded = await open_store(root)
        try:
            assert store.discarded_bytes == 0
            assert store.disk_bytes() == before
            kept = loaded[generation]
            assert (kept.first_record, kept.first_position) == (cut, position_of(cut))
            assert list(kept.summary.sizes) == [len(r.payload) for r in RECORDS[cut:]]
            assert list(kept.summary.times) == [r.written_ms or 0 for r in RECORDS[cut:]]
            assert kept.summary.closed
            # What dropped records said outlives them: closure, Stream-Seq, producers' last seqs.
            assert kept.summary.producers == {"p": ProducerState(1, 1), "q": ProducerState(0, 0)}
            assert kept.summary.stream_seq == "7"
            await assert_kept(store, generation, cut)
            files = sorted(p.name for p in (root / "streams" / f"{generation:016d}").iterdir())
            assert files == ["data.1", "index.1", "manifest.json"]
        finally:
            await store.close()


async def test_appends_and_a_second_compaction_after_the_first(tmp_path: Path) -> None:
    store, generation = await written(tmp_path)
    await store.drop_before(generation, 3, position_of(3))
    more = [Record(b"d0"), Record(b"d1")]
    await store.append(generation, more)
    await store.drop_before(generation, 5, position_of(5))
    await store.close()

    store, loaded = await open_store(tmp_path)
    try:
        kept = loaded[generation]
        assert kept.first_record == 5
        assert list(kept.summary.sizes) == [len(r.payload) for r in [*RECORDS[5:], *more]]
        assert await store.read(generation, 5, 10) == b"".join(r.payload for r in [*RECORDS[5:], *more])
    finally:
        await store.close()


async def test_a_soft_delete_during_a_compaction_loses_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DELETE of a stream that forks still read (a soft delete: the manifest is replaced) may
    arrive while a retention compaction of it runs on another I/O thread. Whichever manifest
    write comes last must name the compaction's files and say the stream is soft-deleted: a
    manifest naming the old, unlinked files would restart as an empty stream."""
    from dataclasses import replace

    from plugin_streams.origin.storage.file import engine, manifest

    write_atomically = manifest.write_atomically

    def slow_old_writes(directory: str, config: StreamConfig, access_ms: int, log: manifest.LogState) -> None:
        if log.file_no == 0:
            time.sleep(0.3)  # the soft delete's write, scheduled before the compaction's, lands after it
        write_atomically(directory, config, access_ms, log)

    cut = 3
    store, generation = await written(tmp_path)
    monkeypatch.setattr(engine.manifest, "write_atomically", slow_old_writes)
    config = store._configs[generation]
    await asyncio.gather(
        store.replace_config(replace(config, soft_deleted=True)),
        store.drop_before(generation, cut, position_of(cut)),
    )
    await store.close()
    monkeypatch.setattr(engine.manifest, "write_atomically", write_atomically)
    store, loaded = await open_store(tmp_path)
    assert loaded[generation].config.soft_deleted
    await assert_kept(store, generation, cut)
    await store.close()


async def test_a_read_queued_behind_a_compaction_reads_the_kept_records(tmp_path: Path) -> None:
    """A read planned with the index from before a compaction may run on its I/O thread after
    the compaction removed the files that index names: it still reads the records (they were
    kept), rather than failing with a storage error."""
    import threading

    store = FileStore(str(tmp_path), io_threads=1, max_open_files=1)
    await store.open()
    generation = await store.allocate_generation()
    await store.create(StreamConfig(generation, "s", "application/octet-stream", None, None, 0), BATCHES[0])
    for batch in BATCHES[1:]:
        await store.append(generation, batch)
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    blocker = loop.run_in_executor(store._read_executor, gate.wait)  # the one read thread is busy
    cut = 3
    queued = asyncio.ensure_future(store.read(generation, cut + 1, len(RECORDS)))
    await asyncio.sleep(0.05)  # the read has taken the index and waits for the thread
    await store.drop_before(generation, cut, position_of(cut))
    gate.set()
    await blocker
    assert await queued == b"".join(r.payload for r in RECORDS[cut + 1 :])
    await store.close()
