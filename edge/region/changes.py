"""Following the origin's change feed: new, closed, deleted and expired streams, and the link.

One long-lived request per region. Its heartbeats are the link's pulse: three missed ones mark
the link down (writes then fail fast, followers drop their dead connections), the next good
line marks it up. It resumes from the last event seen; when the origin cannot resume there, the
replica reconciles against the full stream list (a resync).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.region.replication_client import ReplicationClient, StreamDescription
from plugin_streams.shared import replication as r
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import Unavailable

logger = logging.getLogger(__name__)


class ChangeFollower:
    def __init__(self, replica: Replica, client: ReplicationClient, link: Link, heartbeat: float = 1.0) -> None:
        self.replica = replica
        self.client = client
        self.link = link
        self.heartbeat = heartbeat
        self.epoch: str | None = None
        self.after = 0
        # Until the origin says otherwise, assume it checks credentials: then a region without the
        # policy never answers reads itself (it could not tell who may read what).
        self.access_control = True
        self.chunk_size: int | None = None  # the origin's catch-up chunk size, once it said it

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._follow_once()
                backoff = 0.05
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, Unavailable, ConnectionError) as exc:
                logger.info("change feed broke: %s: %s", type(exc).__name__, exc)
            self.link.mark_down()
            self.replica.link_lost()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _follow_once(self) -> None:
        async with self.client.changes(self.after, self.epoch, self.heartbeat) as feed:
            while (event := await feed.next_event()) is not None:
                await self._handle(event)

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        replica = self.replica
        if kind in (r.HELLO, r.RESYNC):
            self.access_control = bool(event.get("access_control"))
            said = event.get("chunk_size")
            self.chunk_size = said if isinstance(said, int) and not isinstance(said, bool) else None
            if kind == r.RESYNC or self.epoch is None:
                await replica.resync()
            self.epoch = str(event["epoch"])
            self.after = int(event["seq"])
            self.link.mark_up()
            return
        self.link.mark_up()
        if kind == r.HEARTBEAT:
            return
        if kind == r.CREATED:
            # In its own task: a fork's install waits for its source's data, and the feed must
            # keep flowing meanwhile (a delete racing it is caught by the follower's 404).
            spawn(self._install(event["stream"]), name="replica-install")
        elif kind == r.DELETED:
            await replica.deleted_upstream(str(event["path"]), int(event["generation"]))
        self.after = int(event["seq"])

    async def _install(self, fields: dict[str, Any]) -> None:
        try:
            await self.replica.announced(StreamDescription.from_json(fields))
        except Unavailable as exc:
            logger.warning("could not replicate a new stream: %s", exc)
