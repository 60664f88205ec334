"""The regional replica: the origin's streams, byte for byte and offset for offset, in local storage.

It coordinates three parts: the origin's own engine, embedded (origin.embed), which holds and
serves the copy; a replication client (edge.region.replication_client), which speaks to the
origin; and one follower per incarnation (edge.region.follower), which applies the origin's log.
Each replicated incarnation is created with the origin's configuration and generation and
receives the origin's records at the origin's positions, so every offset minted anywhere is
valid here, chunk windows and ETags match, and the origin's read code (long-poll and SSE woken
by commits) serves it unchanged.

Which streams is the region's read interest (edge.region.interest). Expiry is the origin's
decision (it is told of reads here through /touch and announces expiry on the change feed), so
the local copy never expires by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from plugin_streams.edge.region.follower import Follower, FollowerEnd
from plugin_streams.edge.region.interest import ReadInterest
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.replication_client import ReplicationClient, StreamDescription
from plugin_streams.origin.embed import EmbeddedOrigin, StreamState
from plugin_streams.shared import replication as r
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.clock import WallClock, wall_clock_ms
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.offsets import Offset

logger = logging.getLogger(__name__)


class Replica:
    def __init__(
        self,
        local: EmbeddedOrigin,
        client: ReplicationClient,
        interest: ReadInterest,
        metrics: RegionMetrics,
        link: Link,
        *,
        max_record: int = 64 * 1024 * 1024,
        touch_interval: float = 0.25,
        clock_ms: WallClock = wall_clock_ms,
    ) -> None:
        self.local = local
        self.client = client
        self.interest = interest
        self.metrics = metrics
        self.link = link
        self.max_record = max_record
        self.touch_interval = touch_interval
        self._clock_ms = clock_ms
        self.followers: dict[int, Follower] = {}  # by generation
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follower_tasks: set[asyncio.Task[Any]] = set()
        # One install per generation: the change feed, a read and a write may all ask at once.
        self._installing: SingleFlight[int, StreamState | None] = SingleFlight("replica-install")
        self._ready: set[int] = set()  # generations caught up once: served locally from then on
        self._dropping: set[int] = set()  # generations being dropped right now (drop is idempotent)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the local store; everything it holds is served at once and followed again."""
        for state in await self.local.start():
            self._ready.add(state.generation)
            self._follow(state)
        self._tasks.add(spawn(self._upkeep(), name="replica-upkeep"))

    def begin_shutdown(self) -> None:
        """Local long-polls answer and SSE responses end, so clients resume elsewhere."""
        self.local.begin_shutdown()

    async def close(self) -> None:
        self.local.begin_shutdown()
        for follower in self.followers.values():
            follower.stopped = True
            follower.abort()
        await cancel_all([*self._tasks, *self._follower_tasks])
        await self.local.close()

    def link_lost(self) -> None:
        """The change feed went silent: drop every follower's connection now (they resume later)."""
        for follower in self.followers.values():
            follower.abort()

    # -- what is served locally -------------------------------------------------------------

    def holding(self, path: str) -> StreamState | None:
        """The local incarnation at `path`, served or still catching up."""
        return self.local.at(path)

    def serving(self, path: str) -> StreamState | None:
        """The local incarnation at `path`, if the region answers reads of it itself."""
        state = self.local.at(path)
        if state is None:
            return None
        if state.generation not in self._ready:
            follower = self.followers.get(state.generation)
            if follower is None or not follower.caught_up.is_set():
                return None  # still copying what the origin already has: ask the origin meanwhile
            self._ready.add(state.generation)
        return state

    def note_read(self, path: str, state: StreamState) -> None:
        self.interest.note_read(path, sliding_ttl=state.config.ttl_seconds is not None)

    def wanted(self, path: str) -> bool:
        return self.interest.wanted(path)

    # -- installing incarnations ------------------------------------------------------------

    async def replicate_on_read(self, path: str) -> None:
        """A read of a stream the region does not hold: replicate it while it is being read."""
        if self.interest.is_lazy(path) or self.local.at(path) is not None:
            return
        self.interest.start_lazily(path)
        try:
            await self.ensure(path)
        except Unavailable:
            self.interest.forget(path)

    async def ensure(self, path: str, *, until: Offset | None = None, closed: bool = False) -> StreamState | None:
        """Replicate the incarnation now at `path` (if any) and wait until it is served locally,
        holding `until` (and closure) when given. None: the origin has no stream there."""
        described = await self.client.describe(path)
        if described is None:
            return None
        state = await self.install(described)
        if state is None:
            return None
        await self.wait_for(state, until, closed)
        return state

    async def install(self, described: StreamDescription) -> StreamState | None:
        generation = described.config.generation
        existing = self.local.incarnation(generation)
        if existing is not None:
            return existing
        return await self._installing.run(generation, lambda: self._install(described))

    async def _install(self, described: StreamDescription) -> StreamState | None:
        config = described.config
        source: StreamState | None = None
        if config.fork is not None:
            fork = config.fork
            source = await self._ensure_generation(fork.source_path, fork.source_generation, fork.position)
            if source is None:
                return None
        holder = self.local.at(config.path)
        if holder is not None and holder.generation < config.generation:
            await self.drop(holder)  # the origin replaced that incarnation
        state = await self.local.install(config, source, described.retained_from)
        self._follow(state)
        return state

    async def _ensure_generation(self, path: str, generation: int, until: int) -> StreamState | None:
        state = self.local.incarnation(generation)
        if state is None:
            described = await self.client.describe(path, generation)
            if described is None:
                return None
            state = await self.install(described)
            if state is None:
                return None
        await self.wait_for(state, Offset(generation, until))
        return state

    def _follow(self, state: StreamState) -> None:
        if state.generation in self.followers:
            return
        follower = Follower(
            state, self.client, self.link, self._apply, self._ended, self.max_record, clock_ms=self._clock_ms
        )
        self.followers[state.generation] = follower
        task = spawn(self._run_follower(follower), name=f"follow-{state.generation}")
        self._follower_tasks.add(task)
        task.add_done_callback(self._follower_tasks.discard)

    async def _run_follower(self, follower: Follower) -> None:
        try:
            await follower.run()
        finally:
            if self.followers.get(follower.state.generation) is follower:
                del self.followers[follower.state.generation]
            self._ready.add(follower.state.generation)  # a finished incarnation holds all it ever will

    async def _ended(self, follower: Follower, end: FollowerEnd) -> None:
        state = follower.state
        if end.status == 404:
            await self.drop(state)  # the origin has no such incarnation any more
        elif end.status == 410 and not state.removed:
            # The origin dropped records the replica never got (retention outran a partition):
            # start this stream again from the origin's earliest record.
            self.metrics.resyncs.inc()
            path = state.config.path
            await self.drop(state)
            spawn(self.ensure(path), name="replica-restart-stream")

    # -- applying records -------------------------------------------------------------------

    async def _apply(self, state: StreamState, frames: list[r.RecordFrame]) -> None:
        now = await self.local.apply(state, frames)
        if now is None:
            return  # dropped meanwhile
        for frame in frames:
            self.metrics.delay.observe(max(0, now - frame.written_ms) / 1000)
        self.metrics.records.inc(len(frames))

    async def wait_for(self, state: StreamState, until: Offset | None, closed: bool = False) -> None:
        """Until the replica holds `until` (and closure if asked), and then serves the stream."""
        follower = self.followers.get(state.generation)
        while not state.removed:
            holds = until is None or state.tail >= until.position
            if holds and (state.closed or not closed):
                if follower is None or follower.caught_up.is_set() or until is not None:
                    break
                await follower.caught_up.wait()
                continue
            await self.local.changed(state)
        self._ready.add(state.generation)

    # -- leaving ----------------------------------------------------------------------------

    async def drop(self, state: StreamState) -> None:
        """Forget a local incarnation (soft-deleted while local forks still read it)."""
        follower = self.followers.pop(state.generation, None)
        if follower is not None:
            follower.stopped = True
            follower.abort()
        self._ready.discard(state.generation)
        self.interest.forget(state.config.path)
        if state.generation in self._dropping:
            return  # the write path and the change feed both report a delete
        self._dropping.add(state.generation)
        try:
            await self.local.drop(state)
        finally:
            self._dropping.discard(state.generation)

    async def deleted_upstream(self, path: str, generation: int) -> None:
        state = self.local.incarnation(generation)
        if state is not None and state.config.path == path:
            await self.drop(state)

    # -- reconciliation ---------------------------------------------------------------------

    async def resync(self) -> None:
        """Match the origin's stream list: drop what it no longer has, install what is wanted."""
        self.metrics.resyncs.inc()
        upstream = await self.client.list_streams()
        for state in self.local.held():
            described = upstream.get(state.config.path)
            if described is None or described.config.generation != state.generation:
                await self.drop(state)
        for path, described in upstream.items():
            if self.wanted(path):
                try:
                    await self.install(described)
                except Unavailable as exc:
                    logger.warning("could not replicate %r: %s", path, exc)

    async def announced(self, described: StreamDescription) -> None:
        """The change feed says a stream was created."""
        if self.wanted(described.path):
            await self.install(described)

    # -- background upkeep ------------------------------------------------------------------

    async def _upkeep(self) -> None:
        last_evict = time.monotonic()
        while True:
            await asyncio.sleep(self.touch_interval)
            self._measure()
            if self.interest.any_touched and self.link.is_up:
                self.interest.untake(await self.client.touch(self.interest.take_touched()))
            if time.monotonic() - last_evict > min(10.0, self.interest.idle / 2):
                last_evict = time.monotonic()
                await self._evict_idle()

    def _measure(self) -> None:
        followers = self.followers.values()
        now = self._clock_ms()
        self.metrics.lag_bytes.set(sum(f.lag_bytes for f in followers))
        self.metrics.lag_seconds.set(max((f.lag_ms(now) for f in followers), default=0) / 1000)
        self.metrics.streams.set(len(self.local))

    async def _evict_idle(self) -> None:
        for path in self.interest.take_idle():
            state = self.local.at(path)
            if state is not None and not self.local.feeds_forks(state):
                logger.info("replica: %r unread for %.0f s, no longer replicated", path, self.interest.idle)
                await self.drop(state)
