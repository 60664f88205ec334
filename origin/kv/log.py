"""A database's change stream, through the stream service: created on the first write, appended
by its database alone, and read back in full at start-up.

The stream is an ordinary JSON stream at `__kv/<db>`, so everything the product does for streams
(durability, crash recovery, edges, CDNs, regional replicas, catch-up, long-poll, SSE) serves it
unchanged; only the KV API may write it (`is_kv_path`, checked by the protocol and REST routes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from plugin_streams.origin import reads
from plugin_streams.origin.kv.events import Event, parse_messages
from plugin_streams.origin.service import StreamService
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.kv.routes import KV_STREAM_ROOT, change_stream_path
from plugin_streams.shared.offsets import Offset
from plugin_streams.shared.parse import AppendRequest, CreateRequest

KV_ROOT: Final = KV_STREAM_ROOT
JSON: Final = "application/json"
_APPEND: Final = AppendRequest(content_type=JSON, closed=False, stream_seq=None, producer=None)
_CREATE: Final = CreateRequest(content_type=JSON, ttl_seconds=None, expires=None, closed=False, fork=None)
_REPLAY_CHUNK: Final = 1024 * 1024


def is_kv_path(path: str) -> bool:
    """Whether a stream path is a KV database's change stream (written only by the KV API)."""
    return path.startswith(KV_ROOT)


class ChangeLog:
    def __init__(self, service: StreamService, db: str) -> None:
        self.service = service
        self.path = change_stream_path(db)

    def tail(self) -> Offset | None:
        """The offset after everything accepted so far, or None before the first write."""
        state = self.service.registry.visible(self.path, self.service.clock_ms())
        if state is None or state.soft_deleted:
            return None
        return Offset(state.generation, state.v_tail)

    async def ensure(self) -> Offset:
        """The tail, creating the stream first if the database was never written."""
        tail = self.tail()
        if tail is None:
            await self.service.create(self.path, _CREATE, b"", owner=KV_ROOT)
            tail = self.tail()
            assert tail is not None
        return tail

    async def append(self, messages: list[bytes], expected_end: Offset) -> None:
        """Append rendered events as one record; returns once durable. A tail other than the one the
        events were rendered for means the stream was written by someone else: refuse loudly."""
        result = await self.service.append(self.path, _APPEND, b"[" + b",".join(messages) + b"]", owner=KV_ROOT)
        if Offset(result.state.generation, result.next_position) != expected_end:
            raise Unavailable(f"change stream {self.path} moved under the KV database: its log is not its own")

    async def events(self) -> AsyncIterator[list[Event]]:
        """Every committed event, in order, a chunk at a time."""
        state = self.service.registry.visible(self.path, self.service.clock_ms())
        if state is None or state.soft_deleted:
            return
        position = state.retained_from
        while position < state.tail:
            result = await reads.read(self.service.store, state, position, _REPLAY_CHUNK)
            if result.end <= position:
                break
            yield parse_messages(result.body)
            position = result.end
