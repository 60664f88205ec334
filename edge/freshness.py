"""How long the edge may serve a cached chunk: its max-age, and what it knows of its stream's fate.

A chunk's bytes never change, but its stream can be deleted, re-created or expire, and then the
origin answers 404 or 410 where the edge would still answer 200. A cached chunk is served only
while all of these hold:
- its max-age has not passed since the edge received it (the origin caps it by the stream's TTL
  or Expires-At, and by a signature's expiry);
- a deletion of its stream since it was stored would have reached this edge: the origin's change
  feed (edge.invalidation) has been followed without a gap since before the chunk was stored (a
  delete then evicts the stream at once; a silent feed is noticed within three heartbeats), or
  else the chunk is younger than `fallback_age` (no feed: a protected origin without
  --origin-token, an edge in front of an edge, the origin unreachable, just after this edge or
  the origin restarted). An older one is fetched again, which checks the stream still exists;
- when its lifetime is capped (a TTL or expiry stream), reads served from it can be reported to
  the origin to keep a sliding TTL alive (edge.touches). While the origin refuses those reports,
  such reads go to the origin, whose own reads keep the TTL alive.
"""

from __future__ import annotations

import time

from plugin_streams.edge.chunks import Chunk
from plugin_streams.shared import caching


def capped(chunk: Chunk) -> bool:
    """Whether the origin shortened the chunk's lifetime for its stream's expiry (or a signature):
    the stream may expire, so reads of it must reach the origin, at least as reports."""
    return chunk.lifetime < caching.YEAR


class Freshness:
    def __init__(self, fallback_age: float = 5.0) -> None:
        self.fallback_age = fallback_age
        self._followed_since: float | None = None  # unix seconds: the feed reached us without a gap since
        self._following = False  # the feed is connected and has not missed three heartbeats
        self._reports_refused_until = 0.0  # unix seconds

    # -- the change feed (edge.invalidation) -------------------------------------------------

    def feed_started(self, now: float) -> None:
        """The feed (re)started from the origin's present: deletions before `now` may be unknown."""
        self._followed_since = now
        self._following = True

    def feed_resumed(self) -> None:
        """The feed resumed where it broke: every event of the gap is delivered after this."""
        self._following = self._followed_since is not None

    def feed_lost(self) -> None:
        self._following = False

    @property
    def following(self) -> bool:
        return self._following

    # -- touch reports (edge.touches) --------------------------------------------------------

    def reports_refused(self, until: float) -> None:
        self._reports_refused_until = until

    def reports_accepted(self) -> None:
        self._reports_refused_until = 0.0

    # -- the decision -------------------------------------------------------------------------

    def fresh(self, chunk: Chunk, now: float | None = None) -> bool:
        return self.fresh_copy(chunk.stored, chunk.expires, now)

    def fresh_copy(self, stored: float, expires: float, now: float | None = None) -> bool:
        """Whether a copy received at `stored` that expires at `expires` may be served `now`."""
        now = time.time() if now is None else now
        if now >= expires:
            return False
        if expires - stored < caching.YEAR and now < self._reports_refused_until:
            return False
        if now - stored < self.fallback_age:
            return True
        since = self._followed_since
        return self._following and since is not None and stored >= since
