"""Reads served from the cache, reported to the origin so they keep a sliding TTL alive.

A read of a TTL stream answered from a cached chunk never reaches the origin, which would then
expire a stream that is being read. Regional replicas report their reads through the
replication API (POST /v1/replication/touch); the edge does the same: the paths of streams read
from capped chunks (edge.freshness.capped) are gathered in a set and posted every `interval`,
one request for all of them, never one per read. The set is bounded by what one report may
carry; paths beyond it wait for the copy to expire (at most its max-age, no more than the TTL),
when the next read goes to the origin anyway.

The report needs `read` on every path where the origin has an access policy: the edge sends its
--origin-token, as a replica does. While the origin refuses (no or a weak token, or an edge in
front of an edge), edge.freshness stops serving capped chunks, so those reads reach the origin
themselves; the edge tries again after REFUSED_RETRY seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from plugin_streams.edge.freshness import Freshness
from plugin_streams.edge.invalidation import REFUSED, REFUSED_RETRY
from plugin_streams.edge.origins import Origins, failure_reason
from plugin_streams.shared import replication as r

logger = logging.getLogger(__name__)


class TouchReporter:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        origin: str | Origins,
        headers: dict[str, str],
        freshness: Freshness,
        reported: Callable[[int], None],
        interval: float = 0.25,
        failed: Callable[[], None] = lambda: None,
    ) -> None:
        self.failed = failed  # counts a report the origin did not take (ds_edge_upstream_errors{kind="touch"})
        self.session = session
        self.origins = origin if isinstance(origin, Origins) else Origins.of([origin])  # the current one is told
        self.headers = headers
        self.freshness = freshness
        self.interval = interval
        self._pending: set[str] = set()
        self._refused = False
        self.reported = reported  # called with how many paths the origin accepted

    def note(self, path: str) -> None:
        if len(self._pending) < r.MAX_TOUCH_PATHS:
            self._pending.add(path)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._pending:
                paths, self._pending = sorted(self._pending), set()
                await self._report(paths)

    async def _report(self, paths: list[str]) -> None:
        timeout = aiohttp.ClientTimeout(total=max(5.0, self.interval * 4))
        origin = self.origins.current
        url = origin.origin + r.TOUCH_PATH
        began = origin.began()
        try:
            async with self.session.post(url, json={"paths": paths}, headers=self.headers, timeout=timeout) as rsp:
                await rsp.read()
                status = rsp.status
            self.origins.answered(origin, status)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            logger.debug("touch report failed: %s", exc)
            self.origins.no_answer(origin, began, failure_reason(exc))
            status = 0
        if status < 300 and status != 0:
            self.reported(len(paths))
            self.freshness.reports_accepted()
            if self._refused:
                logger.info("the origin accepts reports of reads served from the cache again")
                self._refused = False
        elif status in REFUSED:
            # The paths are dropped: until the retry, their reads go to the origin themselves.
            self.freshness.reports_refused(time.time() + REFUSED_RETRY)
            if not self._refused:
                logger.warning(
                    "the origin refused reports of reads served from the cache (%d): reads of TTL or "
                    "expiring streams go to the origin (give the edge an --origin-token with read on all)",
                    status,
                )
                self._refused = True
        else:  # the origin is unreachable or failing: report them with the next batch
            self.failed()
            for path in paths:
                self.note(path)
