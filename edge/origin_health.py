"""Whether an origin answers, as this edge last saw it: a two-state machine that logs its transitions.

An edge given several origins (edge.origins) keeps one of these per origin, so the log names
each origin that goes away and comes back.

Every upstream request reports its outcome here (edge.upstream), and so does the readiness probe
(edge.readiness). The edge logs once when the origin becomes unreachable (WARNING) and once when
it answers again (INFO, with how long it was gone), never once per request: with thousands of
readers behind an edge, a per-request line would bury the one that matters.

A failure only counts against the origin if its request began after the last answer: a long-poll
that started before an answer and timed out later says nothing about the origin *now*, while
another request just got an answer. Any HTTP answer, whatever its status, means the origin is
reachable (a 404 or a 503 is the origin speaking; the request metrics show those).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class OriginHealth:
    """`reachable` is None until the first outcome, then True or False."""

    def __init__(self, origin: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = origin
        self._clock = clock
        self.reachable: bool | None = None
        self.reason = "not asked yet"
        self._last_answer = float("-inf")  # when a request last got an answer
        self._down_since: float | None = None

    def began(self) -> float:
        """The time to pass back with the request's outcome."""
        return self._clock()

    def answered(self) -> None:
        """A request got an HTTP answer from the origin (any status)."""
        now = self._clock()
        self._last_answer = now
        if self.reachable is False and self._down_since is not None:
            logger.info("origin %s answers again (unreachable for %.1f s)", self.origin, now - self._down_since)
        self.reachable = True
        self.reason = "answering"
        self._down_since = None

    def failed(self, began: float, reason: str) -> bool:
        """A request begun at `began` got no answer (refused, reset, timed out): `reason` says how.

        Whether it counted (False: stale, the origin answered another request since it began).
        """
        if began < self._last_answer:
            return False
        if self.reachable is False:
            self.reason = reason  # the latest cause, shown by /readyz; logged once already
            return True
        self.reachable = False
        self.reason = reason
        self._down_since = self._clock()
        logger.warning("origin %s unreachable: %s", self.origin, reason)
        return True
