"""Fork creation (PROTOCOL.md §4.2): find the source, place the fork point, cut the sub-offset.

A fork shares its source's offsets up to the fork point and stores only its own records after
it. A sub-offset inside the source's append at the fork point is materialised as the fork's
first record (the first N bytes, or the first N JSON messages, of that append).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from dataclasses import dataclass

from plugin_streams.origin.positions import resolve_position
from plugin_streams.origin.registry import Registry
from plugin_streams.origin.storage.base import ForkLink, StorageError
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import content_types, jsonmode
from plugin_streams.shared.errors import BadRequest, Conflict, NotFound, Unavailable
from plugin_streams.shared.headers import RETRY_AFTER
from plugin_streams.shared.offsets import NOW
from plugin_streams.shared.parse import ForkSpec


@dataclass(frozen=True, slots=True)
class ResolvedFork:
    source: StreamState
    link: ForkLink
    content_type: str
    prefix: bytes  # materialised sub-offset data, stored as the fork's first record


async def resolve_fork(registry: Registry, spec: ForkSpec, content_type: str | None, now_ms: int) -> ResolvedFork:
    source = await registry.find(spec.source, now_ms)
    if source is None:
        raise NotFound("fork source stream not found")
    if source.soft_deleted:
        raise Conflict("fork source stream was deleted")
    if content_type is not None and not content_types.same(content_type, source.config.content_type):
        raise Conflict("a fork's Content-Type must match its source's")
    await source.durable()
    position = resolve_position(source, spec.offset if spec.offset is not None else NOW, for_fork=True)
    prefix = b""
    if spec.sub_offset:
        prefix = await _sub_offset_prefix(registry, source, position, spec.sub_offset)
    link = ForkLink(
        source_generation=source.generation,
        source_path=source.config.path,
        position=position,
        requested_offset=str(spec.offset) if spec.offset is not None else None,
        requested_sub_offset=spec.sub_offset,
    )
    return ResolvedFork(source, link, source.config.content_type, prefix)


async def _sub_offset_prefix(registry: Registry, source: StreamState, position: int, count: int) -> bytes:
    """The first `count` bytes (JSON: messages) of the source append starting at `position`."""
    for member, upper in source.chain():
        if member.base <= position < upper:
            index = bisect_left(member.starts, position)
            if index >= len(member.starts) or member.starts[index] != position:
                break
            try:
                stored = await registry.store.read(member.generation, index, index + 1)
            except StorageError as exc:
                raise Unavailable("could not read the fork source", {RETRY_AFTER: "1"}) from exc
            if content_types.is_json(source.config.content_type):
                if len(stored) > jsonmode.INLINE_BYTES:  # a scan of a big append runs off the loop
                    prefix = await asyncio.get_running_loop().run_in_executor(
                        None, jsonmode.first_messages, stored, count
                    )
                else:
                    prefix = jsonmode.first_messages(stored, count)
                if prefix is None:
                    raise BadRequest("Stream-Fork-Sub-Offset is past the end of that append")
                return prefix
            if count > len(stored):
                raise BadRequest("Stream-Fork-Sub-Offset is past the end of that append")
            return stored[:count]
    raise BadRequest("Stream-Fork-Sub-Offset needs an append at the fork offset")
