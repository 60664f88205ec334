"""Whether a regional edge answers a read from its replica: one rule for both APIs.

A read is answered here when the replica serves the stream (it has caught up with it once) and
this edge can check credentials whenever the origin does. A stream the region does not hold is
read the ordinary edge way (from the origin) and, when the read asks for data, replicated from
then on; while the link is down such a read fails at once with 503 and a jittered Retry-After.
"""

from __future__ import annotations

from plugin_streams.edge.region.changes import ChangeFollower
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.upstream import unavailable
from plugin_streams.origin.embed import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.auth import AccessPolicy


class ReadGate:
    def __init__(
        self, name: str, replica: Replica, changes: ChangeFollower, metrics: RegionMetrics, policy: AccessPolicy
    ) -> None:
        self.name = name
        self.replica = replica
        self.changes = changes
        self.metrics = metrics
        self.policy = policy

    def local(self, path: str, *, replicate_on_miss: bool) -> StreamState | None:
        """The incarnation to answer from here (counted as a local read), or None: ask the origin.

        `replicate_on_miss`: a stream not held starts being replicated (a read of its data, not
        of its metadata alone).
        """
        if self.changes.access_control and not self.policy.enabled:
            return None  # the origin checks credentials and this edge can't: never serve locally
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
