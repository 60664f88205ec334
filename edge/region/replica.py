"""The regional replica: the origin's streams, byte for byte and offset for offset, in local storage.

It is the origin's own engine and service (origin.storage, origin.service), filled by followers
(edge.region.follower) instead of by clients: each replicated incarnation is created with the
origin's configuration and generation, and receives the origin's records at the origin's
positions, so every offset minted anywhere is valid here, chunk windows and ETags match, and
the origin's read code (long-poll and SSE woken by commits) serves it unchanged.

Which streams: those matching `--replicate` patterns (eagerly, as the change feed announces
them), plus any other stream read in the region, from its first read until it has gone unread
for `replica_idle` seconds. Expiry is the origin's decision (it is told of reads here through
/touch and announces expiry on the change feed), so the local registry never expires by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from plugin_streams.edge.region.follower import Diverged, Follower, FollowerEnd
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.patterns import PathPatterns
from plugin_streams.origin.app import wall_clock_ms
from plugin_streams.origin.registry import Registry
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage.base import Record, StorageError, Store
from plugin_streams.origin.storage.config_fields import config_from_fields
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import replication as r
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.offsets import Offset

logger = logging.getLogger(__name__)


class Replica:
    def __init__(
        self,
        store: Store,
        origin: str,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        patterns: PathPatterns,
        metrics: RegionMetrics,
        link: Link,
        *,
        heartbeat: float = 5.0,
        idle: float = 300.0,
        max_record: int = 64 * 1024 * 1024,
        touch_interval: float = 0.25,
    ) -> None:
        self.service = StreamService(store, wall_clock_ms)
        self.service.registry.sliding_expiry = False
        self.origin = origin.rstrip("/")
        self.session = session
        self.headers = headers
        self.patterns = patterns
        self.metrics = metrics
        self.link = link
        self.heartbeat = heartbeat
        self.idle = idle
        self.max_record = max_record
        self.touch_interval = touch_interval
        self.followers: dict[int, Follower] = {}  # by generation
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follower_tasks: set[asyncio.Task[Any]] = set()
        self._installing: dict[int, asyncio.Future[StreamState | None]] = {}
        self._ready: set[int] = set()  # generations caught up once: served locally from then on
        self._last_read: dict[str, float] = {}  # lazily replicated paths: last local read (monotonic)
        self._touched: set[str] = set()  # paths read here since the last /touch
        self._dropping: set[int] = set()  # generations being dropped right now (drop is idempotent)

    @property
    def registry(self) -> Registry:
        return self.service.registry

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the local store; everything it holds is served at once and followed again."""
        await self.service.start()
        self.service.ready = True
        for state in sorted(self.registry.by_generation.values(), key=lambda s: s.generation):
            self._ready.add(state.generation)
            self._follow(state)
        self._tasks.add(spawn(self._upkeep(), name="replica-upkeep"))

    async def close(self) -> None:
        self.service.begin_shutdown()
        for follower in self.followers.values():
            follower.stopped = True
            follower.abort()
        await cancel_all([*self._tasks, *self._follower_tasks])
        await self.service.drain()
        await self.service.store.close()

    def link_lost(self) -> None:
        """The change feed went silent: drop every follower's connection now (they resume later)."""
        for follower in self.followers.values():
            follower.abort()

    # -- what is served locally -------------------------------------------------------------

    def serving(self, path: str) -> StreamState | None:
        """The local incarnation at `path`, if the region answers reads of it itself."""
        state = self.registry.by_path.get(path)
        if state is None:
            return None
        if state.generation not in self._ready:
            follower = self.followers.get(state.generation)
            if follower is None or not follower.caught_up.is_set():
                return None  # still copying what the origin already has: ask the origin meanwhile
            self._ready.add(state.generation)
        return state

    def note_read(self, path: str, state: StreamState) -> None:
        if path in self._last_read:
            self._last_read[path] = time.monotonic()
        if state.config.ttl_seconds is not None:
            self._touched.add(path)

    def wanted(self, path: str) -> bool:
        return self.patterns.matches(path) or path in self._last_read

    # -- installing incarnations ------------------------------------------------------------

    async def replicate_on_read(self, path: str) -> None:
        """A read of a stream the region does not hold: replicate it while it is being read."""
        if path in self._last_read or self.registry.by_path.get(path) is not None:
            return
        self._last_read[path] = time.monotonic()
        try:
            await self.ensure(path)
        except Unavailable:
            self._last_read.pop(path, None)

    async def ensure(self, path: str, *, until: Offset | None = None, closed: bool = False) -> StreamState | None:
        """Replicate the incarnation now at `path` (if any) and wait until it is served locally,
        holding `until` (and closure) when given. None: the origin has no stream there."""
        described = await self._get_json(f"{r.STREAMS_PATH}/{quote(path, safe='/')}")
        if described is None:
            return None
        state = await self.install(described)
        if state is None:
            return None
        await self.wait_for(state, until, closed)
        return state

    async def install(self, described: dict[str, Any]) -> StreamState | None:
        config = config_from_fields(described["config"])
        existing = self.registry.by_generation.get(config.generation)
        if existing is not None:
            return existing
        pending = self._installing.get(config.generation)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[StreamState | None] = asyncio.get_running_loop().create_future()
        self._installing[config.generation] = future
        try:
            state = await self._install(described)
            future.set_result(state)
            return state
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._installing[config.generation]

    async def _install(self, described: dict[str, Any]) -> StreamState | None:
        config = config_from_fields(described["config"])
        source: StreamState | None = None
        if config.fork is not None:
            fork = config.fork
            source = await self._ensure_generation(fork.source_path, fork.source_generation, fork.position)
            if source is None:
                return None
        registry = self.registry
        holder = registry.by_path.get(config.path)
        if holder is not None and holder.generation < config.generation:
            await self.drop(holder)  # the origin replaced that incarnation
            holder = None
        retained_from = int(described.get("retained_from", 0))
        base = config.fork.position if config.fork is not None else 0
        try:
            await self.service.store.create(config, [])
            if retained_from > base:
                # The origin no longer keeps the start: begin at its earliest record instead.
                await self.service.store.drop_before(config.generation, 1, retained_from)
        except StorageError as exc:
            raise Unavailable(f"replica storage failed: {exc}") from exc
        state = StreamState(config, source, wall_clock_ms())
        if retained_from > base:
            state.dropped = 1
            state.retained_from = state.tail = state.v_tail = retained_from
        registry.by_generation[state.generation] = state
        if source is not None:
            source.refcount += 1
        if holder is None:
            registry.by_path[config.path] = state
        else:
            state.removed = True  # an older incarnation, kept only as a fork's source
        self._follow(state)
        return state

    async def _ensure_generation(self, path: str, generation: int, until: int) -> StreamState | None:
        state = self.registry.by_generation.get(generation)
        if state is None:
            described = await self._get_json(
                f"{r.STREAMS_PATH}/{quote(path, safe='/')}", {"generation": str(generation)}
            )
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
            state,
            self.origin,
            self.session,
            self.headers,
            self.link,
            self._apply,
            self._ended,
            self.heartbeat,
            self.max_record,
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
        if state.removed and state.generation not in self.registry.by_generation:
            return
        futures = []
        for frame in frames:
            if frame.start != state.v_tail:
                raise Diverged(f"record at {frame.start}, replica tail at {state.v_tail}")
            record = Record(frame.payload, closed=frame.closed, written_ms=frame.written_ms)
            state.accept(record)
            futures.append(self.service.committer.submit(state, record))
        await asyncio.gather(*futures)
        now = wall_clock_ms()
        delay = max(0, now - frames[-1].written_ms) / 1000
        for frame in frames:
            self.metrics.delay.observe(max(0, now - frame.written_ms) / 1000)
        self.metrics.lag_seconds.set(delay)
        self.metrics.records.inc(len(frames))
        self.service.apply_retention(state, now)

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
            await asyncio.shield(state.change_future())
        self._ready.add(state.generation)

    # -- leaving ----------------------------------------------------------------------------

    async def drop(self, state: StreamState) -> None:
        """Forget a local incarnation (soft-deleted while local forks still read it)."""
        follower = self.followers.pop(state.generation, None)
        if follower is not None:
            follower.stopped = True
            follower.abort()
        self._ready.discard(state.generation)
        self._last_read.pop(state.config.path, None)
        if state.generation in self._dropping:
            return  # the write path and the change feed both report a delete
        self._dropping.add(state.generation)
        try:
            if self.registry.by_path.get(state.config.path) is state:
                if not state.soft_deleted:
                    await self.registry.delete(state)
            elif state.refcount == 0 and state.generation in self.registry.by_generation:
                await self.registry.remove(state)
        finally:
            self._dropping.discard(state.generation)
        state.notify()

    async def deleted_upstream(self, path: str, generation: int) -> None:
        state = self.registry.by_generation.get(generation)
        if state is not None and state.config.path == path:
            await self.drop(state)

    # -- reconciliation ---------------------------------------------------------------------

    async def resync(self) -> None:
        """Match the origin's stream list: drop what it no longer has, install what is wanted."""
        self.metrics.resyncs.inc()
        upstream: dict[str, dict[str, Any]] = {}
        after = ""
        while True:
            page = await self._get_json(r.STREAMS_PATH, {"after": after, "limit": "1000"})
            if page is None:
                raise Unavailable("the origin did not list its streams")
            for described in page["streams"]:
                upstream[described["config"]["path"]] = described
            if not page.get("next"):
                break
            after = page["next"]
        for path, state in list(self.registry.by_path.items()):
            described = upstream.get(path)
            if described is None or int(described["config"]["generation"]) != state.generation:
                await self.drop(state)
        for path, described in upstream.items():
            if self.wanted(path):
                try:
                    await self.install(described)
                except Unavailable as exc:
                    logger.warning("could not replicate %r: %s", path, exc)

    async def announced(self, described: dict[str, Any]) -> None:
        """The change feed says a stream was created."""
        if self.wanted(described["config"]["path"]):
            await self.install(described)

    # -- background upkeep ------------------------------------------------------------------

    async def _upkeep(self) -> None:
        last_evict = time.monotonic()
        while True:
            await asyncio.sleep(self.touch_interval)
            self.metrics.lag_bytes.set(sum(f.lag_bytes for f in self.followers.values()))
            self.metrics.streams.set(len(self.registry.by_path))
            if self._touched and self.link.is_up:
                await self._report_touched()
            if time.monotonic() - last_evict > min(10.0, self.idle / 2):
                last_evict = time.monotonic()
                await self._evict_idle()

    async def _report_touched(self) -> None:
        """Tell the origin which TTL streams were read here, so their sliding expiry moves on.

        The origin takes at most MAX_TOUCH_PATHS a report: a larger set in one post would be
        refused with 400 and retried forever, so it goes in batches; what is not sent is kept.
        """
        paths, self._touched = sorted(self._touched), set()
        for first in range(0, len(paths), r.MAX_TOUCH_PATHS):
            try:
                await self._post_json(r.TOUCH_PATH, {"paths": paths[first : first + r.MAX_TOUCH_PATHS]})
            except Unavailable:
                self._touched.update(paths[first:])
                return

    async def _evict_idle(self) -> None:
        cutoff = time.monotonic() - self.idle
        for path, last in list(self._last_read.items()):
            if last < cutoff and not self.patterns.matches(path):
                state = self.registry.by_path.get(path)
                del self._last_read[path]
                if state is not None and state.refcount == 0:
                    logger.info("replica: %r unread for %.0f s, no longer replicated", path, self.idle)
                    await self.drop(state)

    # -- origin calls -----------------------------------------------------------------------

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.heartbeat * 3)
        try:
            async with self.session.get(
                self.origin + path, params=params, headers=self.headers, timeout=timeout
            ) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise Unavailable(f"origin answered {response.status} to {path}")
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"origin unavailable: {type(exc).__name__}") from exc

    async def _post_json(self, path: str, body: object) -> None:
        timeout = aiohttp.ClientTimeout(total=self.heartbeat * 3)
        try:
            async with self.session.post(self.origin + path, json=body, headers=self.headers, timeout=timeout) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"origin unavailable: {type(exc).__name__}") from exc
