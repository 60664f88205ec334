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
from plugin_streams.shared.replication import RecordFrame

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


async def test_replication_lag_is_measured_on_the_injected_clock(replica: Replica) -> None:
    state = await replica.install(_described("a", 3))
    assert state is not None
    await replica._apply(state, [RecordFrame(0, b"x", False, NOW_MS - 250)])
    assert state.tail == 1
    assert replica.metrics.lag_seconds._value.get() == 0.25  # type: ignore[attr-defined]
