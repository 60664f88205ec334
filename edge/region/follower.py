"""One replicated stream incarnation's live upstream tail: the origin's log feed, applied locally.

The follower asks for records from the replica's own tail, so after a broken link, a partition
or a restart it resumes exactly where the replica stands, and nothing is lost or applied twice
(each frame names its start position, which must equal the local tail). Everything a chunk of
the response holds is applied as one batch (one group commit). A heartbeat names the origin's
tail: the follower is caught up when it has all of it.
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

    @property
    def lag_bytes(self) -> int:
        return max(0, self.origin_tail - self.state.tail)

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
                            self.origin_tail = max(self.origin_tail, frame.start + len(frame.payload))
                        else:
                            if records:
                                await self._apply(state, records)
                                records = []
                            if self._on_heartbeat(frame):
                                return None  # the incarnation left its path: nothing more will come
                    if records:
                        await self._apply(state, records)
                    if self.stopped or state.removed:
                        return None
            finally:
                self._feed = None
        return None

    def _on_heartbeat(self, beat: r.Heartbeat) -> bool:
        self.origin_tail = beat.tail
        if self.state.tail >= beat.tail:
            self.caught_up.set()
        if beat.gone or (beat.closed and self.state.tail >= beat.tail):
            self.stopped = True
            return True
        return False
