"""The edge's `/readyz`: ready once its origin answers (one of them, when it has several), asked
at most once a second.

Load balancers and orchestrators probe every edge often, and an edge fleet is large: each probe
must not become a request to the origin. The answer to one upstream `GET /readyz` (the origin's,
or a nearer edge's, which asks its own origin in turn) is kept for `max_age` seconds, and
concurrent probes share the one request in flight. Its outcome also feeds the origin's health
(edge.origin_health), so an idle edge notices an origin that went away, and one that came back.

`/healthz` stays a liveness check of this process alone: an edge whose origin is down is alive
(it still serves what it caches), but should not be sent new clients that need the origin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from plugin_streams.edge.upstream import Upstream
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.errors import Unavailable

#: How long one answer of the origin stands for every probe.
MAX_AGE: Final = 1.0
#: A probe waits no longer for the origin (probes themselves time out after a second or a few).
TIMEOUT: Final = 2.0
_PATH: Final = "/readyz"


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    reason: str  # why not, or "origin answers"
    at: float  # when the origin was asked


class Readiness:
    def __init__(
        self,
        upstream: Callable[[], Upstream | None],
        *,
        max_age: float = MAX_AGE,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstream = upstream  # None until the edge's lifecycle has opened its session
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._last: Verdict | None = None
        self._flight: SingleFlight[str, Verdict] = SingleFlight("readiness")
        self.stopping = False  # set on shutdown: a draining edge takes no new clients

    async def verdict(self) -> Verdict:
        last = self._last
        if last is not None and self._clock() - last.at < self._max_age:
            return last
        return await self._flight.run(_PATH, self._ask)

    async def _ask(self) -> Verdict:
        at = self._clock()
        upstream = self._upstream()
        if upstream is None:
            return Verdict(False, "starting", at)
        origin = upstream.health  # the one asked first (with several, the others are asked after it fails)
        began = origin.began()
        try:
            async with asyncio.timeout(self._timeout):
                reply = await upstream.request("GET", _PATH, {}, kind="readiness")
        except Unavailable:
            verdict = Verdict(False, f"origin unreachable ({upstream.origins.unreachable_reason()})", at)
        except TimeoutError:
            reason = f"no answer to {_PATH} within {self._timeout:g} s"
            upstream.failed("readiness")
            upstream.origins.no_answer(origin, began, reason)
            verdict = Verdict(False, f"origin unreachable ({reason})", at)
        else:
            ok = reply.status == 200
            verdict = Verdict(ok, "origin answers" if ok else f"origin not ready ({reply.status})", at)
        self._last = verdict
        return verdict

    async def handle(self, request: web.Request) -> web.Response:
        verdict = Verdict(False, "shutting down", self._clock()) if self.stopping else await self.verdict()
        return web.Response(
            status=200 if verdict.ready else 503,
            text="ready\n" if verdict.ready else f"not ready: {verdict.reason}\n",
            headers={h.CACHE_CONTROL: caching.NO_STORE},
        )
