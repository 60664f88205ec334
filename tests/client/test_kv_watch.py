"""kv.watch against real processes: exactly once across stops and crashes from a saved offset, at the
origin and through an edge; prefix filtering, commits of several changes, coalescing, long-poll."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator

import pytest

from plugin_streams import Kv, KvChange, KvU64, Streams, SyncStreams
from tests.client.test_kv import db_name
from tests.support.processes import EdgeProcess, OriginProcess

COMMITS = 300


@pytest.fixture(scope="module")
def origin_and_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OriginProcess, EdgeProcess]]:
    root = tmp_path_factory.mktemp("kv-watch")
    with OriginProcess(root / "data", "--sse-keepalive", "0.5") as origin, EdgeProcess(origin.url, root) as edge:
        yield origin, edge


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def write_commits(kv: Kv, count: int) -> None:
    """`count` commits: each sets ("items", i) and a key outside the watched prefix."""
    for i in range(count):
        assert (await kv.atomic().set(("items", i), i).set(("noise", i), i).commit()).ok
        await asyncio.sleep(0.01)  # the writer runs for seconds: the watcher is killed while it writes


async def crash_prone_watcher(writer: Kv, reader: Kv, count: int, seed: int) -> tuple[list[int], int, int]:
    """A watcher whose effect (the key ("seen", i), which must not exist yet, holding the change's
    offset) and its resume offset are committed in one atomic; it is killed (its task cancelled,
    possibly mid-commit) at random points and restarted from the offset stored with the effects.
    Returns (items in the order their effects were committed, duplicates detected, kills)."""
    rng = random.Random(seed)
    duplicates = 0
    kills = 0

    async def effect(change: KvChange) -> None:
        nonlocal duplicates
        item = change.key[1]
        op = writer.atomic().check(("seen", item), None).set(("seen", item), change.offset)
        if not (await op.set(("watcher", "offset"), change.offset).commit()).ok:
            duplicates += 1  # delivered again after its effect was committed

    async def done() -> int:
        return len([entry async for entry in writer.list(("seen",), batch_size=1000)])

    while await done() < count:
        saved = (await writer.get(("watcher", "offset"))).value
        watch = reader.watch([("items",)], effect, resume_from=saved if saved is not None else "-1")
        await asyncio.sleep(rng.uniform(0.02, 0.3))
        watch.done.cancel()  # a crash: no clean stop, possibly in the middle of a commit
        kills += 1
        await asyncio.gather(watch.done, return_exceptions=True)
    effects = [(entry.value, entry.key[1]) async for entry in writer.list(("seen",), batch_size=1000)]
    return [int(item) for _, item in sorted(effects)], duplicates, kills


@pytest.mark.parametrize("via", ["origin", "edge"])
async def test_a_watcher_killed_at_random_points_processes_every_change_exactly_once(
    origin_and_edge: tuple[OriginProcess, EdgeProcess], via: str
) -> None:
    origin, edge = origin_and_edge
    db = db_name()
    async with Streams(origin.url) as writer, Streams(edge.url if via == "edge" else origin.url) as reader:
        async with asyncio.timeout(50), asyncio.TaskGroup() as tasks:
            tasks.create_task(write_commits(writer.kv(db), COMMITS))
            watcher = tasks.create_task(crash_prone_watcher(writer.kv(db), reader.kv(db), COMMITS, seed=len(via)))
        processed, duplicates, kills = watcher.result()
    print(f"watch via {via}: {COMMITS} commits, {kills} kills, lost 0, duplicated {duplicates}")
    assert processed == list(range(COMMITS))  # every change, once, in commit order
    assert duplicates == 0
    assert kills >= 5


async def test_a_stopped_watch_resumes_from_its_offset(origin_and_edge: tuple[OriginProcess, EdgeProcess]) -> None:
    origin, _ = origin_and_edge
    async with Streams(origin.url) as streams:
        kv = streams.kv(db_name())
        start = await kv.set(("before",), 0)  # the watch starts after this commit
        got: list[KvChange] = []
        watch = kv.watch([()], got.append, resume_from=start.offset)
        await kv.atomic().set(("a",), 1).set(("b",), 2).commit()
        await eventually(lambda: len(got) == 2)
        watch.stop()
        await watch
        assert watch.offset == got[-1].offset
        await kv.set(("c",), 3)
        watch = kv.watch([()], got.append, resume_from=watch.offset, mode="long-poll")
        await eventually(lambda: len(got) == 3)
        watch.stop()
        await watch
        assert [(c.key, c.value, c.last) for c in got] == [(("a",), 1, False), (("b",), 2, True), (("c",), 3, True)]
        assert got[0].offset == got[1].offset != got[2].offset


async def test_prefixes_filter_changes_and_deletes_and_sums_appear(
    origin_and_edge: tuple[OriginProcess, EdgeProcess],
) -> None:
    origin, _ = origin_and_edge
    async with Streams(origin.url) as streams:
        kv = streams.kv(db_name())
        got: list[KvChange] = []
        watch = kv.watch([("users",), ("counters", "visits")], got.append, resume_from="-1")
        await kv.set(("users", "alice"), {"n": 1})
        await kv.set(("posts", "p1"), "ignored")
        await kv.set(("users",), "the prefix itself is not under it")
        await kv.atomic().sum(("counters", "visits", "home"), 2).sum(("counters", "other"), 1).commit()
        await kv.delete(("users", "alice"))
        await eventually(lambda: len(got) == 3)
        await asyncio.sleep(0.3)  # nothing else arrives
        watch.stop()
        await watch
        assert [(c.key, c.op, c.value) for c in got] == [
            (("users", "alice"), "set", {"n": 1}),
            (("counters", "visits", "home"), "set", KvU64(2)),  # a sum appears as the KvU64 it set
            (("users", "alice"), "delete", None),
        ]


async def test_a_watch_of_a_database_not_yet_written_waits_for_it(
    origin_and_edge: tuple[OriginProcess, EdgeProcess],
) -> None:
    origin, _ = origin_and_edge
    async with Streams(origin.url) as streams:
        kv = streams.kv(db_name())
        got: list[KvChange] = []
        watch = kv.watch([()], got.append)  # from now; the change stream does not exist yet
        await asyncio.sleep(0.3)
        await kv.set(("first",), 1)
        await eventually(lambda: len(got) == 1)
        watch.stop()
        await watch
        assert got[0].key == ("first",)


async def test_coalescing_skips_intermediate_values_but_ends_on_the_latest(
    origin_and_edge: tuple[OriginProcess, EdgeProcess],
) -> None:
    origin, _ = origin_and_edge
    async with Streams(origin.url) as streams:
        kv = streams.kv(db_name())
        got: list[KvChange] = []

        async def slow(change: KvChange) -> None:
            got.append(change)
            await asyncio.sleep(0.05)

        watch = kv.watch([("k",)], slow, durable=False, resume_from="-1")
        for i in range(60):
            await kv.set(("k", i % 3), i)
        await eventually(lambda: {c.key: c.value for c in got} == {("k", 0): 57, ("k", 1): 58, ("k", 2): 59})
        watch.stop()
        await watch
        assert len(got) < 60  # intermediate values were skipped
        assert [c.offset for c in got] == sorted(c.offset for c in got)


async def test_a_callback_error_ends_the_watch_with_it(origin_and_edge: tuple[OriginProcess, EdgeProcess]) -> None:
    origin, _ = origin_and_edge
    async with Streams(origin.url) as streams:
        kv = streams.kv(db_name())

        def broken(change: KvChange) -> None:
            raise RuntimeError("callback failed")

        watch = kv.watch([()], broken, resume_from="-1")
        await kv.set(("x",), 1)
        with pytest.raises(RuntimeError, match="callback failed"):
            async with asyncio.timeout(10):
                await watch


def test_sync_watch(origin_and_edge: tuple[OriginProcess, EdgeProcess]) -> None:
    origin, _ = origin_and_edge
    with SyncStreams(origin.url) as streams:
        kv = streams.kv(db_name())
        got: list[KvChange] = []
        watch = kv.watch([("a",)], got.append, resume_from="-1")
        kv.set(("a", 1), 1)
        kv.set(("b", 1), 1)
        kv.set(("a", 2), 2)
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        watch.stop()
        watch.wait(10)
        assert [c.key for c in got] == [("a", 1), ("a", 2)]
        assert watch.offset == got[-1].offset


async def test_the_kv_api_and_the_queue_through_an_edge(origin_and_edge: tuple[OriginProcess, EdgeProcess]) -> None:
    origin, edge = origin_and_edge
    db = db_name()
    async with Streams(edge.url) as via_edge, Streams(origin.url) as direct:
        kv = via_edge.kv(db)
        written = await kv.set(("a",), 1)
        assert (await direct.kv(db).get(("a",))).versionstamp == written.versionstamp
        assert (await kv.atomic().check(("a",), written.versionstamp).set(("a",), 2).commit()).ok
        assert [(e.key, e.value) async for e in kv.list()] == [(("a",), 2)]
        enqueued = await kv.enqueue("job")
        [message] = await kv.queue().lease("edge-worker", wait_ms=2000)
        assert message.id == enqueued.enqueued[0]
        assert (await kv.queue().ack(message.token, kv.atomic().set(("done",), True))).ok
        assert (await direct.kv(db).get(("done",))).value is True


@pytest.mark.parametrize("durable", [True, False])
async def test_stop_lets_the_change_being_delivered_finish(
    origin_and_edge: tuple[OriginProcess, EdgeProcess], durable: bool
) -> None:
    origin, _ = origin_and_edge
    async with Streams(origin.url) as streams:
        kv = streams.kv(db_name())
        started: list[KvChange] = []
        finished: list[KvChange] = []

        async def slow(change: KvChange) -> None:
            started.append(change)
            await asyncio.sleep(0.5)
            finished.append(change)

        watch = kv.watch([()], slow, durable=durable, resume_from="-1")
        written = await kv.set(("a",), 1)
        await eventually(lambda: len(started) == 1)
        watch.stop()
        await watch
        assert finished == started and watch.offset == written.offset
