"""What subscriptions need from the stream service: tails, the list of streams, and wake appends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from plugin_streams.origin.service import StreamService
from plugin_streams.shared import content_types
from plugin_streams.shared.parse import AppendRequest

ZERO_OFFSET = "0000000000000000_0000000000000000"  # the tail reported for a stream that does not exist


class StreamView(Protocol):
    def tail_offset(self, path: str) -> str | None: ...

    def paths(self) -> Iterator[str]: ...

    async def append_json(self, path: str, message: bytes) -> bool: ...


class ServiceStreams:
    """StreamView over the origin's StreamService (paths are relative to the stream root)."""

    def __init__(self, service: StreamService) -> None:
        self.service = service

    def tail_offset(self, path: str) -> str | None:
        state = self.service.registry.visible(path, self.service.clock_ms())
        if state is None or state.soft_deleted:
            return None
        return str(state.offset_at(state.tail))

    def paths(self) -> Iterator[str]:
        now = self.service.clock_ms()
        for path in list(self.service.registry.by_path):
            state = self.service.registry.visible(path, now)
            if state is not None and not state.soft_deleted:
                yield path

    async def append_json(self, path: str, message: bytes) -> bool:
        """Append one JSON message; False when the stream is missing, closed or not JSON."""
        state = self.service.registry.visible(path, self.service.clock_ms())
        if state is None or state.soft_deleted or state.v_closed:
            return False
        if not content_types.is_json(state.config.content_type):
            return False
        request = AppendRequest(content_type=state.config.content_type, closed=False, stream_seq=None, producer=None)
        try:
            await self.service.append(path, request, message)
        except Exception:
            return False
        return True
