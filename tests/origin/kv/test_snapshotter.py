"""The snapshotter in process (memory engine, snapshot files in a temporary directory): when a
snapshot is due, that a restart restores it and replays only what follows, and that a snapshot
that does not fit the log (ahead of it) or a torn temporary file is never used.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.databases import KvDatabases
from plugin_streams.origin.kv.queues import encode_snapshot
from plugin_streams.origin.kv.snapshot_files import TEMP_SUFFIX, SnapshotFiles
from plugin_streams.origin.kv.snapshotter import SnapshotPolicy, Snapshotter, snapshotter_for
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared.kv.commits import AtomicCommit, Enqueue, SetMutation, U64Mutation
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import encode_value


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _commit(i: int) -> AtomicCommit:
    return AtomicCommit(
        (),
        (
            SetMutation(encode_key(("k", i % 7)), encode_value(i)),
            U64Mutation("sum", encode_key(("n",)), 1),
            Enqueue(encode_value(i)),
        ),
    )


async def _service() -> StreamService:
    service = StreamService(MemoryStore(), lambda: 1_000_000)
    await service.start()
    return service


def _snapshotter(tmp_path: Path, every_events: int = 1000, clock: FakeClock | None = None) -> Snapshotter:
    return Snapshotter(SnapshotFiles(str(tmp_path)), SnapshotPolicy(every_events, 60.0), clock or FakeClock())


async def _write(db: KvDatabase, commits: range) -> None:
    for i in commits:
        await db.write(decisions.commit(db, _commit(i)))


def _same(a: KvDatabase, b: KvDatabase) -> None:
    assert a.offset == b.offset
    assert a.index.entries() == b.index.entries()
    assert encode_snapshot(a.queue) == encode_snapshot(b.queue)


async def test_a_restart_restores_the_snapshot_and_replays_only_the_events_after_it(tmp_path: Path) -> None:
    service = await _service()
    db = await KvDatabases(service, snapshots=_snapshotter(tmp_path)).open("app")
    await db.write(decisions.ensure_group(db, "g"))
    await _write(db, range(40))
    await db.write(decisions.lease_one(db, "g", "w", 5_000))
    assert await _snapshotter(tmp_path).take(db)
    await _write(db, range(40, 45))
    again = await KvDatabases(service, snapshots=_snapshotter(tmp_path)).open("app")
    assert again.events_applied == 5
    _same(again, db)
    without = await KvDatabases(service).open("app")
    assert without.events_applied == 42 + 5
    _same(without, db)


async def test_a_snapshot_taken_while_commits_stream_in_restores_to_the_live_state(tmp_path: Path) -> None:
    service = await _service()
    db = await KvDatabases(service).open("app")
    snapshotter = _snapshotter(tmp_path)
    writers = [asyncio.ensure_future(_write(db, range(w, 300, 4))) for w in range(4)]  # batches of about 4
    for _ in range(10_000):  # let some batches go by
        if db.events_applied >= 40:
            break
        await asyncio.sleep(0)
    taken = asyncio.ensure_future(snapshotter.take(db))
    await asyncio.gather(*writers)
    assert await taken
    again = await KvDatabases(service, snapshots=_snapshotter(tmp_path)).open("app")
    assert 0 < again.events_applied < 300  # restored mid-stream, then the rest replayed
    _same(again, db)


async def test_a_snapshot_ahead_of_the_log_is_refused_and_the_log_replayed(tmp_path: Path) -> None:
    longer, shorter = await _service(), await _service()
    for service, commits in ((longer, 20), (shorter, 10)):
        db = await KvDatabases(service).open("app")
        await _write(db, range(commits))
        if service is longer:
            assert await _snapshotter(tmp_path).take(db)
    live = await KvDatabases(shorter).open("app")
    again = await KvDatabases(shorter, snapshots=_snapshotter(tmp_path)).open("app")
    assert again.events_applied == 10
    _same(again, live)


async def test_a_torn_temporary_file_is_never_read(tmp_path: Path) -> None:
    service = await _service()
    db = await KvDatabases(service).open("app")
    await _write(db, range(10))
    assert await _snapshotter(tmp_path).take(db)
    whole = (tmp_path / "app.snapshot").read_bytes()
    await _write(db, range(10, 12))
    (tmp_path / ("app" + TEMP_SUFFIX)).write_bytes(whole[: len(whole) // 2])  # a crash mid-write
    again = await KvDatabases(service, snapshots=_snapshotter(tmp_path)).open("app")
    assert again.events_applied == 2
    _same(again, db)


async def test_a_snapshot_is_due_after_enough_events_or_time_and_only_if_something_changed(tmp_path: Path) -> None:
    clock = FakeClock()
    snapshotter = _snapshotter(tmp_path, every_events=5, clock=clock)
    service = await _service()
    db = await KvDatabases(service, snapshots=snapshotter).open("app")
    assert not snapshotter.due(db)
    await _write(db, range(4))
    assert not snapshotter.due(db)
    await _write(db, range(4, 5))
    assert snapshotter.due(db)
    assert await snapshotter.take(db)
    assert not snapshotter.due(db)
    clock.now += 61
    assert not snapshotter.due(db)  # nothing changed since
    assert await snapshotter.take(db)  # a shutdown's
    await _write(db, range(5, 6))
    assert not snapshotter.due(db)  # one event, and the last snapshot is new
    clock.now += 61
    assert snapshotter.due(db)


async def test_shutdown_snapshots_the_changed_databases_only(tmp_path: Path) -> None:
    service = await _service()
    databases = KvDatabases(service, snapshots=_snapshotter(tmp_path))
    changed, untouched = await databases.open("changed"), await databases.open("untouched")
    await _write(changed, range(3))
    await _write(untouched, range(2))
    assert databases.snapshots is not None
    assert await databases.snapshots.take(untouched)
    (tmp_path / "untouched.snapshot").unlink()
    await databases.close()
    assert (tmp_path / "changed.snapshot").exists() and not (tmp_path / "untouched.snapshot").exists()


def test_the_file_engine_snapshots_under_the_data_directory_and_the_memory_engine_not_at_all(tmp_path: Path) -> None:
    assert snapshotter_for(OriginConfig(engine="memory", data_dir=str(tmp_path))) is None
    config = OriginConfig(data_dir=str(tmp_path), kv_snapshot_events=7, kv_snapshot_seconds=3.0)
    snapshotter = snapshotter_for(config)
    assert snapshotter is not None and snapshotter.policy == SnapshotPolicy(7, 3.0)
    assert snapshotter.files.path("app") == str(tmp_path / "kv" / "app.snapshot")
