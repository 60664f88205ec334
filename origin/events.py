"""What the service tells listeners about streams (the replication change feed listens).

Called synchronously on the event loop, right after the change is durable and visible.
"""

from __future__ import annotations

from typing import Protocol

from plugin_streams.origin.stream import StreamState


class StreamEvents(Protocol):
    def created(self, state: StreamState) -> None: ...

    def appended(self, state: StreamState) -> None:
        """A record with data was appended (by any API: protocol, REST, the service itself)."""

    def closed(self, state: StreamState) -> None: ...

    def gone(self, state: StreamState, reason: str) -> None:
        """The path no longer names `state` (deleted, soft-deleted or expired)."""


class NoEvents:
    def created(self, state: StreamState) -> None:
        pass

    def appended(self, state: StreamState) -> None:
        pass

    def closed(self, state: StreamState) -> None:
        pass

    def gone(self, state: StreamState, reason: str) -> None:
        pass
