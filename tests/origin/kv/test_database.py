"""The KV database's single writer, in process over the memory engine: concurrent commits share
appends, reads never see what is not durable, and a failed append changes nothing durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.databases import KvDatabases
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.origin.storage.base import Record, StorageError
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import Forbidden, Unavailable
from plugin_streams.shared.kv.commits import AtomicCommit, Check, SetMutation, U64Mutation
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import encode_value, u64_of
from plugin_streams.shared.parse import AppendRequest


class GatedStore(MemoryStore):
    """A memory store whose appends wait for `gate`, and fail while `failing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False
        self.appends = 0

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        await self.gate.wait()
        if self.failing:
            raise StorageError("disk on fire")
        self.appends += 1
        await super().append(generation, records)


async def _database(store: GatedStore) -> tuple[StreamService, KvDatabase]:
    service = StreamService(store, lambda: 1_000_000)
    await service.start()
    return service, await KvDatabases(service).open("app")


def _set(key: str, value: object) -> AtomicCommit:
    return AtomicCommit((), (SetMutation(encode_key((key,)), encode_value(value)),))  # type: ignore[arg-type]


async def test_concurrent_commits_share_appends_and_get_rising_versionstamps() -> None:
    store = GatedStore()
    _, db = await _database(store)
    counter = encode_key(("n",))
    commit = AtomicCommit((), (U64Mutation("sum", counter, 1),))
    written = await asyncio.gather(*(db.write(decisions.commit(db, commit)) for _ in range(50)))
    stamps = [w.event.versionstamp for w in written if w.event is not None]
    assert len(stamps) == 50 and stamps == sorted(set(stamps))  # in submission order, all distinct
    assert store.appends < 10  # the first commit goes alone, the other 49 wait and share
    entry = db.index.get(counter)
    assert entry is not None and u64_of(entry.value) == 50


async def test_a_read_waits_for_the_batch_it_would_see_to_be_durable() -> None:
    store = GatedStore()
    _, db = await _database(store)
    await db.write(decisions.commit(db, _set("k", 1)))
    store.gate.clear()
    writing = spawn(db.write(decisions.commit(db, _set("k", 2))), name="writer")
    for _ in range(20):
        await asyncio.sleep(0)
    reading = spawn(db.readable(), name="reader")
    await asyncio.sleep(0.01)
    assert not writing.done() and not reading.done()  # the new value is applied but not yet durable
    store.gate.set()
    await writing
    await reading
    entry = db.index.get(encode_key(("k",)))
    assert entry is not None and entry.value == encode_value(2)


async def test_a_failed_append_answers_503_and_leaves_only_what_is_durable() -> None:
    store = GatedStore()
    _, db = await _database(store)
    first = await db.write(decisions.commit(db, _set("k", 1)))
    store.failing = True
    with pytest.raises(Unavailable):
        await db.write(decisions.commit(db, _set("k", 2)))
    store.failing = False
    entry = db.index.get(encode_key(("k",)))
    assert entry is not None and entry.value == encode_value(1) and db.offset == first.event.offset  # type: ignore[union-attr]
    # A check against the durable versionstamp still holds: nothing of the failed batch remains.
    check = Check(encode_key(("k",)), entry.versionstamp)
    again = await db.write(decisions.commit(db, AtomicCommit((check,), _set("k", 3).mutations)))
    assert again.value is True


async def test_a_failed_check_logs_nothing() -> None:
    store = GatedStore()
    _, db = await _database(store)
    await db.write(decisions.commit(db, _set("k", 1)))
    appends = store.appends
    refused = await db.write(decisions.commit(db, AtomicCommit((Check(encode_key(("k",)), None),), ())))
    assert refused.value is False and refused.event is None and store.appends == appends


async def test_only_the_kv_api_writes_a_change_stream() -> None:
    service, db = await _database(GatedStore())
    await db.write(decisions.commit(db, _set("k", 1)))
    request = AppendRequest(content_type="application/json", closed=False, stream_seq=None, producer=None)
    with pytest.raises(Forbidden):
        await service.append(db.log.path, request, b"[1]")
    with pytest.raises(Forbidden):
        await service.delete(db.log.path)


async def test_a_database_rebuilt_from_its_stream_equals_the_live_one() -> None:
    store = GatedStore()
    service, db = await _database(store)
    for i in range(30):
        await db.write(decisions.commit(db, _set(f"k{i % 7}", i)))
    await db.write(decisions.ensure_group(db, "g"))
    leased = await db.write(decisions.lease_one(db, "g", "w", 5_000))
    assert leased.value is None  # nothing enqueued
    again = KvDatabase("app", db.log, service.clock_ms)
    await again.load()
    assert again.index.entries() == db.index.entries()
    assert again.offset == db.offset and set(again.queue.groups) == {"g"}
