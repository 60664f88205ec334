"""The change feed: what happened to which stream, numbered, kept in a bounded window.

The origin publishes one event per create, close, delete and expiry, so replicas learn about
streams without polling each one. Events live in memory only, named by an epoch chosen at
start-up: after an origin restart (new epoch) or when a replica asks for events that left the
window, the feed says `resync`, and the replica reconciles against the stream list instead.
That keeps the write path free of a second durable append, and the list is the truth anyway.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from typing import Any

from plugin_streams.origin.replication.configs import describe
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import replication as r

WINDOW = 100_000  # events kept for replicas that reconnect


class ChangeLog:
    def __init__(self, window: int = WINDOW) -> None:
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self._events: deque[tuple[int, bytes]] = deque(maxlen=window)
        self._changed: asyncio.Future[None] | None = None

    # -- StreamEvents (origin.events) -------------------------------------------------------

    def created(self, state: StreamState) -> None:
        self._publish(r.CREATED, stream=describe(state))

    def appended(self, state: StreamState) -> None:
        pass  # (replicas follow appends through the log feed, not the change feed)

    def closed(self, state: StreamState) -> None:
        self._publish(r.CLOSED, path=state.config.path, generation=state.generation, tail=state.tail)

    def gone(self, state: StreamState, reason: str) -> None:
        self._publish(r.DELETED, path=state.config.path, generation=state.generation, reason=reason)

    # -- readers ----------------------------------------------------------------------------

    def _publish(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        line = json.dumps({"seq": self.seq, "type": kind, **fields}, separators=(",", ":")).encode() + b"\n"
        self._events.append((self.seq, line))
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def since(self, epoch: str | None, after: int) -> list[bytes] | None:
        """Event lines after `after`, or None when the feed cannot resume there (resync)."""
        if epoch != self.epoch or after > self.seq:
            return None
        oldest = self._events[0][0] if self._events else self.seq + 1
        if after + 1 < oldest:
            return None
        skip = after + 1 - oldest
        return [line for _, line in list(self._events)[skip:]]

    async def wait(self, after: int, timeout: float) -> None:
        """Until an event after `after` exists, or `timeout` seconds."""
        if self.seq > after:
            return
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._changed)
        except TimeoutError:
            pass

    def control(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "epoch": self.epoch, "seq": self.seq, **fields}
        return json.dumps(payload, separators=(",", ":")).encode() + b"\n"
