"""Queue trimming by the KV sweeper: memory keeps only the messages some group still needs, while
stats and dead-letter queues stay what they were, groups created or reset from `-1` after a trim
start at the first retained message, and a replay of the log (a restart) trims the same way.

In process over the memory engine (the sweep called directly), then with a real origin whose
sweeper trims on its own, restarted with and without its snapshot.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.databases import KvDatabases
from plugin_streams.origin.kv.queues import decode_record, encode_snapshot, group_stats
from plugin_streams.origin.kv.queues.records import Leased, Trimmed
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared.kv.commits import AtomicCommit, Enqueue
from plugin_streams.shared.kv.values import encode_value
from tests.origin.kv.conftest import KvApi
from tests.support.processes import ProcessGroup, process_group

NOW = 1_000_000


async def _databases() -> tuple[StreamService, KvDatabases]:
    service = StreamService(MemoryStore(), lambda: NOW)
    await service.start()
    return service, KvDatabases(service, trim_interval_s=0.0)


async def _enqueue(db: KvDatabase, count: int) -> None:
    commit = AtomicCommit((), tuple(Enqueue(encode_value(n)) for n in range(count)))
    await db.write(decisions.commit(db, commit))


async def _lease(db: KvDatabase, group: str) -> Leased:
    written = await db.write(decisions.lease_one(db, group, "w", 60_000))
    assert written.value is not None
    return written.value


async def test_a_sweep_trims_what_no_group_needs_and_keeps_stats_and_dead_letters() -> None:
    service, databases = await _databases()
    db = await databases.open("app")
    await db.write(decisions.ensure_group(db, "g"))
    await _enqueue(db, 10)
    leases = [await _lease(db, "g") for _ in range(5)]
    for held in leases[:3]:
        await db.write(decisions.acknowledge(db, "g", held.token, None))
    await db.write(decisions.terminate(db, "g", leases[3].token, "poison"))
    ids = list(db.queue.message_ids)
    stats, dead = group_stats(db.queue, "g", NOW), dict(db.queue.groups["g"].dead)

    await databases.sweep(db)

    assert db.queue.trimmed_through == ids[2] and db.queue.message_ids == ids[3:]  # the dead letter stays
    assert group_stats(db.queue, "g", NOW) == stats and db.queue.groups["g"].dead == dead
    await databases.sweep(db)  # nothing more to trim: no event
    assert db.queue.trimmed_through == ids[2]
    # The live lease, the dead letter and the five waiting messages still work as before.
    await db.write(decisions.acknowledge(db, "g", leases[4].token, None))
    assert (await db.write(decisions.redrive_dead(db, "g", None))).value == 1
    # A group made implicitly, explicitly with -1, or reset to -1 starts at the first retained message.
    await db.write(decisions.ensure_group(db, "late"))
    await db.write(decisions.create(db, "later", ""))
    await db.write(decisions.reset_group(db, "g", ""))
    for group in ("late", "later", "g"):
        assert sorted(db.queue.groups[group].ready_due) == ids[3:], group

    replayed = await KvDatabases(service).open("app")  # a restart: the log alone
    assert encode_snapshot(replayed.queue) == encode_snapshot(db.queue)


async def test_nothing_is_trimmed_while_the_queue_has_no_group() -> None:
    _, databases = await _databases()
    db = await databases.open("app")
    await _enqueue(db, 3)
    await databases.sweep(db)
    assert len(db.queue.message_ids) == 3 and db.queue.trimmed_through is None
    await db.write(decisions.ensure_group(db, "first"))  # Deno's first listener gets what came before it
    assert len(db.queue.groups["first"].ready_due) == 3


async def test_after_a_trim_that_left_nothing_new_groups_get_new_messages_and_a_reset_changes_nothing() -> None:
    _, databases = await _databases()
    db = await databases.open("app")
    await db.write(decisions.ensure_group(db, "g"))
    await _enqueue(db, 2)
    for _ in range(2):
        await db.write(decisions.acknowledge(db, "g", (await _lease(db, "g")).token, None))
    await databases.sweep(db)
    assert not db.queue.message_ids and db.queue.trimmed_through is not None
    fingerprint = encode_snapshot(db.queue)
    await db.write(decisions.reset_group(db, "g", ""))
    assert encode_snapshot(db.queue) == fingerprint
    await db.write(decisions.ensure_group(db, "late"))
    await _enqueue(db, 1)
    assert len(db.queue.groups["late"].ready_due) == 1


# ---- a real origin --------------------------------------------------------------------------------


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, long_poll_timeout=1.0) as started:
        yield started


async def _trimmed_through(api: KvApi, timeout_s: float = 30.0) -> str:
    """The id of the origin's first trim, read from the change stream (the sweeper trims every 10 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in await api.events():
            for text in event["queue"]:
                record = decode_record(base64.urlsafe_b64decode(text))
                if isinstance(record, Trimmed):
                    return record.through_id
        await asyncio.sleep(0.5)
    raise AssertionError("the sweeper did not trim")


async def test_a_real_origin_trims_and_restarts_with_the_same_stats_and_dead_letters(
    processes: ProcessGroup, http: aiohttp.ClientSession
) -> None:
    data = processes.tmp_path / "data"
    origin = await processes.aorigin(data_dir=data)
    api = KvApi(http, origin.url, "app")
    await api.ok("PUT", "/queue/groups/g", body={"from": "-1"})
    ids = [(await api.enqueue({"n": n}))["id"] for n in range(50)]
    held = await api.lease("g", max=45, leaseMs=600_000)
    for message in held[:40]:
        await api.ok("POST", "/queue/groups/g/ack", body={"token": message["token"]})
    await api.ok("POST", "/queue/groups/g/term", body={"token": held[40]["token"], "error": "poison"})

    assert await _trimmed_through(api) == ids[39]

    async def seen(api: KvApi) -> tuple[object, ...]:
        stats = await api.stats("g")
        stats.pop("oldestAgeMs")
        return stats, await api.ok("GET", "/queue/groups/g/dlq")

    before = await seen(api)
    assert before[0] == {"depth": 5, "inFlight": 4, "redeliveries": 0, "acked": 40, "dlq": 1}
    assert [entry["id"] for entry in before[1]["entries"]] == [ids[40]]
    origin.kill()
    origin = await processes.aorigin(data_dir=data)  # no snapshot yet: the log replayed, trim included
    api = KvApi(http, origin.url, "app")
    assert await seen(api) == before
    assert origin.stop() == 0
    origin = await processes.aorigin(data_dir=data)  # from the shutdown's snapshot
    api = KvApi(http, origin.url, "app")
    assert await seen(api) == before
    # A new group (here made by its first lease) is fed every retained message, none of the trimmed.
    fed = await api.lease("late", max=100)
    assert sorted(message["id"] for message in fed) == ids[40:]
    status, _ = await api.call("PUT", "/queue/groups/later", body={"from": "-1"})
    assert status in (200, 201)
