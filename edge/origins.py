"""The origins an edge may ask, the one it asks now, and when it moves on to another (failover).

Several origin processes on one database serve any stream (issue #15), so an edge or a regional
replica may be given several `--origin` URLs. It asks one of them, the *current* one, for
everything: staying on one keeps its connections warm and makes what the edge shares (coalesced
long-polls, SSE hubs, the change feed) come from one place.

When the current origin fails (no answer: refused, reset, timed out; or a 502/503/504: a gateway
in front of it, or an origin that cannot serve now) it is marked down and the next origin in the
configured order that is not down becomes current: one failover, counted. If every other origin
is down too, the edge stays where it is; each request still tries the others once
(`next_untried`), and the first one that answers well becomes current.

A downed origin is asked its `/readyz` every `probe_interval` seconds (`probe`) until it answers
200: then it is up again, but the edge stays on the origin it moved to (sticky: moving back
would be a second interruption for nothing, as every origin serves every stream). It is chosen
again when the current one fails. With a single origin none of this changes anything: there is
nowhere to move, and every request is tried once, as it always was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Final

import aiohttp
from yarl import URL

from plugin_streams.edge.origin_health import OriginHealth

logger = logging.getLogger(__name__)

#: Answers that say "this origin cannot serve now; another may": a gateway's, or an overloaded origin's.
GATEWAY_FAILURES: Final = frozenset({502, 503, 504})
#: Seconds between two questions to a downed origin, and how long one may take.
PROBE_INTERVAL: Final = 2.0
PROBE_TIMEOUT: Final = 2.0
_PROBE_PATH: Final = "/readyz"


class Origins:
    """The configured origins in order (each with its OriginHealth), which is current, which are down."""

    def __init__(self, healths: Sequence[OriginHealth], on_failover: Callable[[], None] = lambda: None) -> None:
        if not healths:
            raise ValueError("an edge needs at least one origin")
        self.all: tuple[OriginHealth, ...] = tuple(healths)
        self._on_failover = on_failover  # ds_edge_origin_failovers_total
        self._current = 0
        self._down: set[int] = set()
        # For finding which origin a response came from (yarl normalises host and default port).
        self._prefixes = tuple(str(URL(health.origin)).rstrip("/") for health in self.all)

    @classmethod
    def of(
        cls,
        urls: Sequence[str],
        *,
        on_failover: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Origins:
        return cls([OriginHealth(url.rstrip("/"), clock) for url in urls], on_failover)

    @property
    def current(self) -> OriginHealth:
        return self.all[self._current]

    @property
    def url(self) -> str:
        """The current origin's base URL."""
        return self.current.origin

    def is_down(self, origin: OriginHealth) -> bool:
        return self._index(origin) in self._down

    def next_untried(self, tried: Collection[OriginHealth]) -> OriginHealth | None:
        """Whom a request that already asked `tried` asks next: the current origin, else the first
        after it that is up, else the first after it that is down (it may be back); None: all asked."""
        if self.current not in tried:
            return self.current
        others = [o for o in self._after(self._current) if o not in tried]
        up = [o for o in others if not self.is_down(o)]
        return next(iter(up or others), None)

    def owner(self, url: str) -> OriginHealth | None:
        """The origin a request to `url` (a full URL, as aiohttp reports it) went to."""
        for health, prefix in zip(self.all, self._prefixes, strict=True):
            if url == prefix or url.startswith(prefix + "/"):
                return health
        return None

    # -- outcomes ------------------------------------------------------------------------------

    def no_answer(self, origin: OriginHealth, began: float, reason: str) -> None:
        """A request to `origin` begun at `began` got no answer: down, unless the failure is stale
        (the origin answered another request since: edge.origin_health)."""
        if origin.failed(began, reason):
            self._mark_down(origin, reason)

    def answered(self, origin: OriginHealth, status: int) -> None:
        """`origin` answered `status`: a 502/503/504 marks it down, anything else up."""
        origin.answered()
        if status in GATEWAY_FAILURES:
            self._mark_down(origin, f"answered {status}")
        else:
            self._mark_up(origin)

    def _mark_down(self, origin: OriginHealth, reason: str) -> None:
        index = self._index(origin)
        self._down.add(index)
        if index != self._current:
            return
        replacement = next((o for o in self._after(index) if not self.is_down(o)), None)
        if replacement is not None:
            self._move_to(replacement, f"{origin.origin} failed ({reason})")

    def _mark_up(self, origin: OriginHealth) -> None:
        self._down.discard(self._index(origin))
        if self.is_down(self.current) and origin is not self.current:
            self._move_to(origin, f"{self.current.origin} is down and {origin.origin} answers")

    def _move_to(self, origin: OriginHealth, why: str) -> None:
        logger.warning("moving to origin %s: %s", origin.origin, why)
        self._current = self._index(origin)
        self._on_failover()

    def _index(self, origin: OriginHealth) -> int:
        return next(i for i, o in enumerate(self.all) if o is origin)

    def _after(self, index: int) -> list[OriginHealth]:
        """Every other origin, in the configured order, starting after `index` (wrapping round)."""
        count = len(self.all)
        return [self.all[(index + step) % count] for step in range(1, count)]

    # -- readiness -----------------------------------------------------------------------------

    def unreachable_reason(self) -> str:
        """Why no origin could be asked: its health's reason, or each origin's when there are several."""
        if len(self.all) == 1:
            return self.current.reason
        return "; ".join(f"{o.origin}: {o.reason}" for o in self.all)

    def any_reachable(self) -> bool:
        """False only when every origin's last request got no answer (ds_edge_origin_reachable)."""
        return any(o.reachable is not False for o in self.all)

    # -- probing downed origins ----------------------------------------------------------------

    async def probe(
        self, session: aiohttp.ClientSession, interval: float = PROBE_INTERVAL, timeout: float = PROBE_TIMEOUT
    ) -> None:
        """Forever: every `interval` seconds, ask each downed origin whether it is ready again."""
        while True:
            await asyncio.sleep(interval)
            downed = [o for o in self.all if self.is_down(o)]
            if downed:
                await asyncio.gather(*(self._probe_one(session, o, timeout) for o in downed))

    async def _probe_one(self, session: aiohttp.ClientSession, origin: OriginHealth, timeout: float) -> None:
        began = origin.began()
        try:
            async with session.get(
                origin.origin + _PROBE_PATH, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            origin.failed(began, failure_reason(exc))  # still down (a stale failure says nothing)
            return
        if status == 200:
            self.answered(origin, status)
        else:
            origin.answered()  # it speaks, but is not ready: still down


def failure_reason(exc: BaseException) -> str:
    """One line on why a request got no answer, e.g. `ClientConnectorError: Cannot connect to host ...`."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
