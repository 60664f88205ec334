"""One replicated stream incarnation's live upstream tail: the origin's log feed, applied locally.

The follower asks for records from the replica's own tail, so after a broken link, a partition
or a restart it resumes exactly where the replica stands, and nothing is lost or applied twice
(each frame names its start position, which must equal the local tail). Everything a chunk of
the response holds is applied as one batch (one group commit). A heartbeat names the origin's
tail: the follower is caught up when it has all of it.

It also knows how long it has been behind (`lag_ms`): the age of the oldest change the origin
holds and the replica has not applied yet, 0 when it has everything the origin announced. A
change's age counts from when the origin accepted it (its `written_ms`), or, when it was
written before this follower started, from that start: a backfill of history is not lag; a
replica that stops keeping up is. Only changes the follower has heard of count: those written
during a partition show once the link is back (meanwhile ds_region_link_up says it is down).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.replication_client import LogFeed, ReplicationClient
from plugin_streams.origin.embed import Diverged, StreamState
from plugin_streams.shared import replication as r
from plugin_streams.shared.clock import WallClock, wall_clock_ms

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FollowerEnd:
    """Why a follower stopped: the incarnation is gone upstream (404), or its data is (410)."""

    status: int


class Follower:
    def __init__(
        self,
        state: StreamState,
        client: ReplicationClient,
        link: Link,
        apply: Callable[[StreamState, list[r.RecordFrame]], Awaitable[None]],
        on_end: Callable[[Follower, FollowerEnd], Awaitable[None]],
        max_record: int,
        clock_ms: WallClock = wall_clock_ms,
    ) -> None:
        self.state = state
        self._client = client
        self._link = link
        self._apply = apply
        self._on_end = on_end
        self._max_record = max_record
        self.origin_tail = state.tail  # as of the last frame from the origin
        self.caught_up = asyncio.Event()
        self.stopped = False
        self._feed: LogFeed | None = None
        self._clock_ms = clock_ms
        self._started_ms = clock_ms()
        # When the oldest change not applied yet was written (wall clock, ms); None: none known.
        self._behind_since_ms: int | None = None

    @property
    def lag_bytes(self) -> int:
        return max(0, self.origin_tail - self.state.tail)

    def lag_ms(self, now_ms: int) -> int:
        """Age of the oldest change the origin announced and the replica has not applied; 0 if none."""
        since = self._behind_since_ms
        return 0 if since is None else max(0, now_ms - since)

    def abort(self) -> None:
        """Drop the current upstream response now (link lost): the loop reconnects later."""
        if self._feed is not None:
            self._feed.close()

    async def run(self) -> None:
        backoff = 0.05
        # A closed stream never changes again: only deletion, which the change feed reports.
        while not self.stopped and not self.state.removed and not self.state.closed:
            if not self._link.is_up:
                await self._link.wait_up()
            try:
                end = await self._follow_once()
                backoff = 0.05
            except (aiohttp.ClientError, TimeoutError, r.FrameError, Diverged, ConnectionError) as exc:
                if not self.stopped:
                    logger.debug("follower of %r: %s", self.state.config.path, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if end is not None:
                self.stopped = True
                await self._on_end(self, end)
                return

    async def _follow_once(self) -> FollowerEnd | None:
        state = self.state
        async with self._client.log(state.config.path, state.generation, state.tail, self._max_record) as feed:
            if feed.missing is not None:
                return FollowerEnd(feed.missing)
            self._feed = feed
            try:
                while (frames := await feed.read()) is not None:
                    records: list[r.RecordFrame] = []
                    for frame in frames:
                        if isinstance(frame, r.RecordFrame):
                            records.append(frame)
                            self._on_record(frame)
                        else:
                            if records:
                                await self._applied(records)
                                records = []
                            if self._on_heartbeat(frame):
                                return None  # the incarnation left its path: nothing more will come
                    if records:
                        await self._applied(records)
                    if self.stopped or state.removed:
                        return None
            finally:
                self._feed = None
        return None

    def _on_record(self, frame: r.RecordFrame) -> None:
        self.origin_tail = max(self.origin_tail, frame.start + len(frame.payload))
        if self._behind_since_ms is None:
            self._behind_since_ms = max(frame.written_ms, self._started_ms)

    async def _applied(self, records: list[r.RecordFrame]) -> None:
        await self._apply(self.state, records)
        if self.state.tail >= self.origin_tail:
            self._behind_since_ms = None
        elif self._behind_since_ms is not None:
            # What is still missing was written after the last record applied.
            self._behind_since_ms = max(self._behind_since_ms, records[-1].written_ms)

    def _on_heartbeat(self, beat: r.Heartbeat) -> bool:
        self.origin_tail = beat.tail
        if self.state.tail >= beat.tail:
            self.caught_up.set()
            self._behind_since_ms = None
        elif self._behind_since_ms is None:
            self._behind_since_ms = self._clock_ms()  # written no later than now: at least this old
        if beat.gone or (beat.closed and self.state.tail >= beat.tail):
            self.stopped = True
            return True
        return False
