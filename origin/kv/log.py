"""A database's change stream, through the stream service: created on the first write, appended
by its database alone, and read back at start-up (in full, or after the offset a snapshot covers).

The stream is an ordinary JSON stream at `__kv/<db>`, so everything the product does for streams
(durability, crash recovery, edges, CDNs, regional replicas, catch-up, long-poll, SSE) serves it
unchanged; only the KV API may write it (`is_kv_path`, checked by the protocol and REST routes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from plugin_streams.origin import reads
from plugin_streams.origin.append_decision import TailMoved
from plugin_streams.origin.kv.events import Event, parse_messages
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.stream import StreamState
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


class LogMoved(Exception):
    """The change stream was written by another origin since this database last caught up."""


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

    @property
    def shared(self) -> bool:
        """Whether other origins write this log too (postgres engine)."""
        return self.service.shared is not None

    def generation(self) -> int | None:
        state = self.service.registry.visible(self.path, self.service.clock_ms())
        return None if state is None or state.soft_deleted else state.generation

    def has_after(self, offset: Offset | None) -> bool:
        """Whether the stream holds events after `offset` (of its generation; all when None)."""
        state = self.service.registry.visible(self.path, self.service.clock_ms())
        if state is None or state.soft_deleted:
            return False
        return state.tail > (state.retained_from if offset is None else offset.position)

    def state(self) -> StreamState | None:
        """The change stream's state in memory (for waiting on its changes), or None."""
        return self.service.registry.visible(self.path, self.service.clock_ms())

    async def refresh(self) -> None:
        """Look at the change stream as the database holds it now: with several origins (postgres
        engine) another one may have written it; with one, memory is already the truth."""
        if self.service.shared is not None:
            await self.service.registry.find(self.path, self.service.clock_ms())

    async def append(self, messages: list[bytes], start: Offset, expected_end: Offset) -> None:
        """Append events rendered for `start` as one record; returns once durable. Raises LogMoved,
        having written nothing, if the stream no longer ends at `start` (another origin's database
        wrote first: catch up and decide again)."""
        stored = b"".join(message + b"," for message in messages)  # a JSON stream's stored form
        try:
            result = await self.service.append(
                self.path, _APPEND, stored, owner=KV_ROOT, stored=True, expected_position=start.position
            )
        except TailMoved as exc:
            raise LogMoved(str(exc)) from exc
        if Offset(result.state.generation, result.next_position) != expected_end:
            raise Unavailable(f"change stream {self.path} moved under the KV database: its log is not its own")

    def why_not_after(self, offset: Offset) -> str | None:
        """Why the stream cannot be replayed from just after `offset` (None: it can).

        A snapshot names the offset it covers; it is usable only if that offset is in this
        incarnation of the stream (a stream deleted and created again starts a new generation)
        and not past its tail (the log lost what the snapshot saw) or before what it retains."""
        state = self.service.registry.visible(self.path, self.service.clock_ms())
        if state is None or state.soft_deleted:
            return "the change stream does not exist"
        if offset.generation != state.generation:
            return f"it is of generation {offset.generation}, the change stream of generation {state.generation}"
        if offset.position > state.tail:
            return f"it is ahead of the change stream (position {offset.position} > tail {state.tail})"
        if offset.position < state.retained_from:
            return f"the change stream no longer holds the events after it (retained from {state.retained_from})"
        return None

    async def events(self, after: Offset | None = None) -> AsyncIterator[list[Event]]:
        """Every committed event after `after` (all of them when None), in order, a chunk at a time.

        `after` must be the offset of an event boundary that `why_not_after` accepts."""
        state = self.service.registry.visible(self.path, self.service.clock_ms())
        if state is None or state.soft_deleted:
            return
        position = state.retained_from if after is None else after.position
        while position < state.tail:
            result = await reads.read(self.service.store, state, position, _REPLAY_CHUNK)
            if result.end <= position:
                break
            yield parse_messages(result.body)
            position = result.end
