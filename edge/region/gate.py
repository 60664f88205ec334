"""Whether a regional edge answers a read from its replica: one rule for both APIs.

A read is answered here when the replica serves the stream (it has caught up with it once),
this edge can check credentials whenever the origin does, and its chunk windows are the
origin's (`--replica-chunk-size` equals the origin's `--chunk-size`: otherwise one offset would
name different immutable answers here and there, and a cache could mix them). A stream the region does not hold is
read the ordinary edge way (from the origin) and, when the read asks for data, replicated from
then on; while the link is down such a read fails at once with 503 and a jittered Retry-After.
"""

from __future__ import annotations

import logging

from plugin_streams.edge.region.changes import ChangeFollower
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.upstream import unavailable
from plugin_streams.origin.embed import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.auth import AccessPolicy

logger = logging.getLogger(__name__)


class ReadGate:
    def __init__(
        self,
        name: str,
        replica: Replica,
        changes: ChangeFollower,
        metrics: RegionMetrics,
        policy: AccessPolicy,
        chunk_size: int,
    ) -> None:
        self.name = name
        self.replica = replica
        self.changes = changes
        self.metrics = metrics
        self.policy = policy
        self.chunk_size = chunk_size
        self._mismatch_told: int | None = None

    def local(self, path: str, *, replicate_on_miss: bool) -> StreamState | None:
        """The incarnation to answer from here (counted as a local read), or None: ask the origin.

        `replicate_on_miss`: a stream not held starts being replicated (a read of its data, not
        of its metadata alone).
        """
        if self.changes.access_control and not self.policy.enabled:
            return None  # the origin checks credentials and this edge can't: never serve locally
        if not self._same_chunks():
            return None
        state = self.replica.serving(path)
        if state is None:
            if not self.replica.link.is_up:
                raise unavailable(f"region {self.name} does not hold this stream and cannot reach the origin")
            if replicate_on_miss:
                spawn(self.replica.replicate_on_read(path), name="replicate-on-read")
            return None
        self.metrics.local_reads.inc()
        return state

    def note_read(self, path: str, state: StreamState) -> None:
        """A read of the stream's data: keeps it replicated, and the origin hears of it (sliding TTL)."""
        self.replica.note_read(path, state)

    def _same_chunks(self) -> bool:
        """Whether local reads cut chunks where the origin does (unknown until it says: assumed)."""
        theirs = self.changes.chunk_size
        if theirs is None or theirs == self.chunk_size:
            return True
        if self._mismatch_told != theirs:
            self._mismatch_told = theirs
            logger.error(
                "region %s: --replica-chunk-size %d is not the origin's --chunk-size %d: reads go to the origin",
                self.name,
                self.chunk_size,
                theirs,
            )
        return False
