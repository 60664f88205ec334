"""The replica as a coordinator, without processes: an embedded origin, a client that never connects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from plugin_streams.edge.region.interest import ReadInterest
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.patterns import PathPatterns
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.region.replication_client import ReplicationClient, StreamDescription
from plugin_streams.origin.embed import EmbeddedOrigin, StreamConfig
from plugin_streams.origin.storage import MemoryStore
from tests.edge.region.scripted_log import ScriptedLog, heartbeat, record
from tests.edge.support import until

NOW_MS = 1_700_000_000_000


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    def clock() -> int:
        return NOW_MS

    async with aiohttp.ClientSession() as session:
        metrics = RegionMetrics(CollectorRegistry(), "eu")
        # The link stays down (no change feed runs): followers wait for it and never connect.
        client = ReplicationClient("http://127.0.0.1:9", session, {}, heartbeat=0.2)
        interest = ReadInterest(PathPatterns(["**"]), idle=10.0)
        local = EmbeddedOrigin(MemoryStore(), clock)
        replica = Replica(local, client, interest, metrics, Link(metrics.link_up), clock_ms=clock)
        await replica.start()
        yield replica
        await replica.close()


def _described(path: str, generation: int) -> StreamDescription:
    return StreamDescription(StreamConfig(generation, path, "text/plain", None, None, 0), retained_from=0)


async def test_concurrent_installs_of_one_incarnation_install_it_once(replica: Replica) -> None:
    first, second = await asyncio.gather(replica.install(_described("a", 3)), replica.install(_described("a", 3)))
    assert first is not None and first is second is replica.holding("a")
    assert list(replica.followers) == [3]


async def test_a_newer_incarnation_replaces_the_one_at_its_path(replica: Replica) -> None:
    older = await replica.install(_described("a", 3))
    newer = await replica.install(_described("a", 4))
    assert older is not None and older.removed and replica.holding("a") is newer
    assert list(replica.followers) == [4]


class Clock:
    def __init__(self) -> None:
        self.now_ms = NOW_MS

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Replica, ScriptedLog, Clock]]:
    """A replica whose link is up and whose log feeds play a script (one per stream followed)."""
    clock = Clock()
    metrics = RegionMetrics(CollectorRegistry(), "eu")
    log = ScriptedLog()
    client: ReplicationClient = log  # type: ignore[assignment]
    link = Link(metrics.link_up)
    link.mark_up()
    local = EmbeddedOrigin(MemoryStore(), clock)
    interest = ReadInterest(PathPatterns(["**"]), idle=10.0)
    replica = Replica(local, client, interest, metrics, link, touch_interval=0.01, clock_ms=clock)
    await replica.start()
    yield replica, log, clock
    await replica.close()


def _gauge(replica: Replica, name: str) -> float:
    return float(getattr(replica.metrics, name)._value.get())


async def _until_gauge(replica: Replica, name: str, value: float) -> None:
    """Until the replica's upkeep has refreshed the gauge to `value` (fails after 2 s)."""
    await until(lambda: _gauge(replica, name) == value, 2, f"{name} == {value} (it is {_gauge(replica, name)})")


async def test_an_idle_replica_that_backfilled_old_records_shows_no_lag(
    scripted: tuple[Replica, ScriptedLog, Clock],
) -> None:
    replica, log, clock = scripted
    log.add([record(0, b"x" * 10, NOW_MS - 70_000), record(10, b"y" * 10, NOW_MS - 69_000), heartbeat(20)])
    state = await replica.install(_described("a", 3))
    assert state is not None
    await replica.wait_for(state, None)
    clock.now_ms += 10_000  # idle ever since
    assert state.tail == 20
    await _until_gauge(replica, "lag_bytes", 0)
    await _until_gauge(replica, "lag_seconds", 0)  # before: ~70 s (the age of the newest record applied)
    assert replica.metrics.delay._sum.get() == 139  # type: ignore[attr-defined]  (per record: still its age)


async def test_a_replica_behind_the_origin_shows_the_age_of_what_it_misses(
    scripted: tuple[Replica, ScriptedLog, Clock],
) -> None:
    replica, log, clock = scripted
    clock.now_ms = NOW_MS + 2_000
    log.add([record(0, b"x" * 10, NOW_MS + 1_000), heartbeat(30)])  # 20 more bytes announced at +2 s, never sent
    state = await replica.install(_described("a", 3))
    assert state is not None
    follower = replica.followers[3]
    await until(lambda: follower.origin_tail == 30, 2, "the record and the heartbeat to be taken")
    clock.now_ms = NOW_MS + 5_000
    await _until_gauge(replica, "lag_bytes", 20)
    await _until_gauge(replica, "lag_seconds", 3.0)  # written no later than when they were announced
