"""A follower's lag: the age of the oldest change it heard of and has not applied, 0 when level."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry, Gauge

from plugin_streams.edge.region.follower import Follower, FollowerEnd
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.replication_client import ReplicationClient
from plugin_streams.origin.embed import EmbeddedOrigin, StreamConfig, StreamState
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared import replication as r
from tests.edge.region.scripted_log import ScriptedLog, Step, heartbeat, record
from tests.edge.support import until

STARTED_MS = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_ms = STARTED_MS

    def __call__(self) -> int:
        return self.now_ms


class Running:
    """One follower of stream "a" over an embedded engine, its feed scripted, its applies gated."""

    def __init__(self, local: EmbeddedOrigin, state: StreamState, clock: Clock) -> None:
        self.local = local
        self.state = state
        self.clock = clock
        self.gate = asyncio.Event()
        self.gate.set()
        self.received: list[r.RecordFrame] = []  # handed to apply, applied or waiting at the gate
        self.follower: Follower | None = None

    async def apply(self, state: StreamState, frames: list[r.RecordFrame]) -> None:
        self.received.extend(frames)
        await self.gate.wait()
        await self.local.apply(state, frames)

    def start(self, *feed: Step) -> Follower:
        link = Link(Gauge("link_up", "", registry=CollectorRegistry()))
        link.mark_up()
        client: ReplicationClient = ScriptedLog(list(feed))  # type: ignore[assignment]  (duck-typed log)
        self.follower = Follower(self.state, client, link, self.apply, _never_ends, 1 << 20, clock_ms=self.clock)
        return self.follower


async def _never_ends(follower: Follower, end: FollowerEnd) -> None:
    raise AssertionError(f"the scripted feed never ends, got {end}")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    clock = Clock()
    local = EmbeddedOrigin(MemoryStore(), clock)
    await local.start()
    state = await local.install(StreamConfig(3, "a", "text/plain", None, None, 0), None, 0)
    yield Running(local, state, clock)
    await local.close()


async def _following(follower: Follower, condition: Callable[[], bool]) -> asyncio.Task[None]:
    task = asyncio.ensure_future(follower.run())
    await until(condition, 2, "the follower to take its scripted feed", interval=0.005)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_history_copied_by_a_backfill_is_no_lag_once_applied(running: Running) -> None:
    follower = running.start([record(0, b"old", STARTED_MS - 70_000), heartbeat(3)])
    task = await _following(follower, lambda: follower.caught_up.is_set())
    running.clock.now_ms += 5_000  # idle afterwards: nothing is behind, however old the data
    assert (running.state.tail, follower.lag_bytes, follower.lag_ms(running.clock())) == (3, 0, 0)
    await _stop(task)


async def test_a_change_received_but_not_applied_is_as_old_as_its_write(running: Running) -> None:
    running.gate.clear()
    follower = running.start([record(0, b"new", STARTED_MS + 1_000)])
    task = await _following(follower, lambda: bool(running.received))
    running.clock.now_ms = STARTED_MS + 3_000
    assert follower.lag_ms(running.clock()) == 2_000 and follower.lag_bytes == 3
    running.gate.set()
    await until(lambda: running.state.tail == 3, 2, "the record to be applied", interval=0.005)
    assert follower.lag_ms(running.clock()) == 0
    await _stop(task)


async def test_history_not_applied_yet_counts_from_when_following_began(running: Running) -> None:
    running.gate.clear()
    follower = running.start([record(0, b"old", STARTED_MS - 70_000)])
    task = await _following(follower, lambda: bool(running.received))
    running.clock.now_ms = STARTED_MS + 3_000
    assert follower.lag_ms(running.clock()) == 3_000  # not 73 s: the copy began 3 s ago
    running.gate.set()
    await _stop(task)


async def test_a_heartbeat_announcing_data_not_received_starts_the_lag_clock(running: Running) -> None:
    running.clock.now_ms = STARTED_MS + 500
    follower = running.start([heartbeat(10)])
    task = await _following(follower, lambda: follower.origin_tail == 10)
    assert follower.lag_ms(running.clock()) == 0
    running.clock.now_ms += 2_000
    assert follower.lag_ms(running.clock()) == 2_000 and not follower.caught_up.is_set()
    await _stop(task)


async def test_progress_through_a_backlog_moves_the_lag_to_what_is_still_missing(running: Running) -> None:
    clock = running.clock

    def later() -> None:
        clock.now_ms = STARTED_MS + 1_500

    clock.now_ms = STARTED_MS + 500
    # Heard of 3 bytes at +0.5 s, of 9 at +1.5 s; then 6 arrive, the last written at +1.2 s:
    # the 3 still missing were written after that one.
    follower = running.start(
        [heartbeat(3)],
        later,
        [heartbeat(9)],
        [record(0, b"abc", STARTED_MS + 100), record(3, b"def", STARTED_MS + 1_200)],
    )
    task = await _following(follower, lambda: running.state.tail == 6)
    clock.now_ms = STARTED_MS + 4_000
    assert follower.lag_ms(clock()) == 2_800 and follower.lag_bytes == 3
    await _stop(task)
