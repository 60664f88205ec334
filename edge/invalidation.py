"""Deletions reach the edge: the origin's change feed, followed to forget deleted streams at once.

The origin announces every delete, expiry and re-creation on its change feed
(origin.replication.changes), which regional replicas follow already. The edge follows it too:
a `deleted` event drops the stream's cached chunks and its recent long-poll answers (`forget`),
as a DELETE through this edge does, so the next read asks the origin and gets its 404 or 410
(SSE hubs end by themselves: the origin ends its SSE responses of a deleted stream). How long
a copy may be served without the feed is edge.freshness's decision: this module only tells it
whether the feed is followed, and since when without a gap.

The feed needs `read` on every path where the origin has an access policy (the edge's
--origin-token). Without it, or when the origin has no feed (an edge in front of an edge), the
edge falls back on edge.freshness's `fallback_age` and asks again every REFUSED_RETRY seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp

from plugin_streams.edge.freshness import Freshness
from plugin_streams.edge.origin_health import OriginHealth
from plugin_streams.edge.origins import Origins, failure_reason
from plugin_streams.shared import replication as r

logger = logging.getLogger(__name__)
# The replication API answers these with no token, a weak one, or where there is none (an edge
# in front of an edge): the change feed and read reports are tried again after REFUSED_RETRY.
REFUSED_RETRY = 30.0
REFUSED = frozenset({401, 403, 404, 405})


class FeedRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"change feed answered {status}")
        self.status = status


class Invalidation:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        origin: str | Origins,
        headers: dict[str, str],
        freshness: Freshness,
        forget: Callable[[str], None],
        heartbeat: float = 1.0,
        failed: Callable[[], None] = lambda: None,
    ) -> None:
        self.failed = failed  # counts a break of the feed (ds_edge_upstream_errors{kind="change_feed"})
        self.session = session
        self.origins = origin if isinstance(origin, Origins) else Origins.of([origin])
        self.headers = headers
        self.freshness = freshness
        self.forget = forget
        self.heartbeat = heartbeat
        self.epoch: str | None = None
        self.after = 0
        self._refused = False
        self._broken = False  # broke since last followed: logged once, not at every retry

    async def run(self) -> None:
        backoff = 0.05
        while True:
            delay: float | None = None
            try:
                await self._follow_once()
                backoff = 0.05
            except FeedRefused as exc:
                if not self._refused:
                    logger.warning(
                        "%s: deletions reach this edge within --cache-fallback-age (%g s) instead of at once "
                        "(give the edge an --origin-token with read on all)",
                        exc,
                        self.freshness.fallback_age,
                    )
                    self._refused = True
                delay = REFUSED_RETRY
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, ConnectionError) as exc:
                # Once per outage (the retries come every second): the edge's origin health logs
                # the origin going away and coming back (edge.origin_health).
                logger.log(
                    logging.DEBUG if self._broken else logging.INFO,
                    "change feed broke: %s: %s",
                    type(exc).__name__,
                    exc,
                )
                self._broken = True
                self.failed()
            self.freshness.feed_lost()
            await asyncio.sleep(backoff if delay is None else delay)
            backoff = min(backoff * 2, 1.0)

    async def _follow_once(self) -> None:
        params = {"after": str(self.after), "heartbeat": str(self.heartbeat)}
        if self.epoch is not None:
            params["epoch"] = self.epoch
        silence = self.heartbeat * 3  # three missed heartbeats: a dead feed (a partition sends no FIN)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=silence, sock_read=silence)
        # The current origin; when it fails, the next attempt asks the next one (whose epoch
        # differs unless they share a database: then it answers `resync`, as after a restart).
        origin = self.origins.current
        try:
            await self._follow(origin, params, timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not isinstance(exc, aiohttp.ClientResponseError):  # (an answer: reported already)
                # A feed that breaks breaks now, however long ago it began: never a stale failure.
                self.origins.no_answer(origin, origin.began(), failure_reason(exc))
            raise

    async def _follow(self, origin: OriginHealth, params: dict[str, str], timeout: aiohttp.ClientTimeout) -> None:
        url = origin.origin + r.CHANGES_PATH
        async with self.session.get(url, params=params, headers=self.headers, timeout=timeout) as response:
            self.origins.answered(origin, response.status)
            if response.status != 200:
                if response.status in REFUSED:
                    raise FeedRefused(response.status)
                raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
            if self._refused or self._broken:
                logger.info("following the origin's change feed again")
                self._refused = self._broken = False
            async for line in response.content:
                if line.strip():
                    self._handle(json.loads(line))

    def _handle(self, event: dict[str, object]) -> None:
        kind = event["type"]
        if kind in (r.HELLO, r.RESYNC):
            if kind == r.RESYNC or self.epoch is None:
                # Events before now are unknown: older copies fall back on their age.
                self.freshness.feed_started(time.time())
            else:
                # The events of the gap follow in this same response, before any other line.
                self.freshness.feed_resumed()
            self.epoch = str(event["epoch"])
            self.after = int(event["seq"])  # type: ignore[call-overload]
            return
        if kind == r.HEARTBEAT:
            return
        if kind == r.DELETED:
            self.forget(str(event["path"]))
        self.after = int(event["seq"])  # type: ignore[call-overload]
