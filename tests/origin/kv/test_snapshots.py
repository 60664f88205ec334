"""Database snapshots (origin/kv/snapshots.py): a captured database restores to the same index and
queue at the same offset; a damaged, foreign or inconsistent file is refused, never loaded.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_streams.origin.kv import decisions, snapshots
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.databases import KvDatabases
from plugin_streams.origin.kv.index import Entry
from plugin_streams.origin.kv.queues import QueueState, encode_snapshot
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared.kv.commits import AtomicCommit, Enqueue, Mutation, SetMutation
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import encode_value
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset


def _commit(key: str, value: int, enqueue: bool = False) -> AtomicCommit:
    mutations: list[Mutation] = [SetMutation(encode_key((key,)), encode_value(value), 60_000)]
    if enqueue:
        mutations.append(Enqueue(encode_value(value)))
    return AtomicCommit((), tuple(mutations))


async def _database(commits: int) -> KvDatabase:
    service = StreamService(MemoryStore(), lambda: 1_000_000)
    await service.start()
    db = await KvDatabases(service).open("app")
    await db.write(decisions.ensure_group(db, "g"))
    for i in range(commits):
        await db.write(decisions.commit(db, _commit(f"k{i % 5}", i, enqueue=i % 3 == 0)))
    await db.write(decisions.lease_one(db, "g", "w", 5_000))
    return db


async def _snapshot_bytes(db: KvDatabase) -> bytes:
    taken = await db.while_still(lambda: snapshots.capture(db))
    assert taken is not None
    return snapshots.encode(taken)


async def test_a_decoded_snapshot_is_the_database_at_its_offset() -> None:
    db = await _database(12)
    restored = snapshots.decode("app", await _snapshot_bytes(db))
    assert restored.offset == db.offset
    assert restored.index.entries() == db.index.entries()
    assert restored.index.last_versionstamp == db.index.last_versionstamp
    assert restored.index.clock_ms == db.index.clock_ms
    assert encode_snapshot(restored.queue) == encode_snapshot(db.queue)
    assert restored.queue.groups["g"].leases  # the lease taken last is in it


async def test_a_database_never_written_has_nothing_to_capture() -> None:
    service = StreamService(MemoryStore(), lambda: 0)
    await service.start()
    db = await KvDatabases(service).open("empty")
    assert await db.while_still(lambda: snapshots.capture(db)) is None


async def test_a_snapshot_of_another_database_is_refused() -> None:
    data = await _snapshot_bytes(await _database(3))
    with pytest.raises(snapshots.RefusedSnapshot, match="database b'app'"):
        snapshots.decode("other", data)


async def test_an_index_ahead_of_the_offset_it_claims_is_refused() -> None:
    db = await _database(3)
    taken = await db.while_still(lambda: snapshots.capture(db))
    assert taken is not None and db.offset is not None
    earlier = Offset(db.offset.generation, db.offset.position - 1)
    lying = snapshots.Capture(taken.db, earlier, 0, taken.entries, taken.last_versionstamp, taken.clock_ms, taken.queue)
    with pytest.raises(snapshots.RefusedSnapshot, match="ahead"):
        snapshots.decode("app", snapshots.encode(lying))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_or_cut_byte_is_refused(data: st.DataObject) -> None:
    snapshot = _SAMPLE
    at = data.draw(st.integers(0, len(snapshot) - 1))
    flipped = bytearray(snapshot)
    flipped[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(snapshots.RefusedSnapshot):
        snapshots.decode("app", bytes(flipped))
    with pytest.raises(snapshots.RefusedSnapshot):
        snapshots.decode("app", snapshot[:at])


def _sample() -> bytes:
    """A small snapshot built without a database: two entries and an empty queue."""
    entries = [Entry(encode_key((f"k{n}",)), encode_value(n), Versionstamp(n + 1)) for n in range(2)]
    taken = snapshots.Capture("app", Offset(1, 500), 2, entries, Versionstamp(2), 7, encode_snapshot(QueueState()))
    return snapshots.encode(taken)


_SAMPLE = _sample()
