"""Chunk values: an immutable catch-up response of the origin, and how to answer from it.

A chunk is the origin's answer to a read from `start` that stopped at a chunk boundary before
the tail (Cache-Control `immutable`): its bytes can never change. A read from any later byte of
a byte stream inside the chunk ends at the same boundary, so it is answered with a slice; JSON
chunks are answered only from their own start (message boundaries are not known here).
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict

from shared import caching, content_types
from shared import headers as h
from shared.offsets import Offset


@dataclass(frozen=True, slots=True)
class ChunkKey:
    scope: str  # stream path, plus a credential hash when the response was private
    generation: int
    start: int


@dataclass(frozen=True, slots=True)
class Chunk:
    key: ChunkKey
    end: int
    body: bytes
    content_type: str
    cache_control: str
    surrogate_key: str | None

    @property
    def byte_stream(self) -> bool:
        return not content_types.is_json(self.content_type)

    def covers(self, position: int) -> bool:
        if position == self.key.start:
            return True
        return self.byte_stream and self.key.start < position < self.end

    def answer(self, position: int) -> tuple[bytes, CIMultiDict[str]]:
        """Body and headers of the origin's response to a read from `position`."""
        body = self.body if position == self.key.start else self.body[position - self.key.start :]
        start = str(Offset(self.key.generation, position))
        end = str(Offset(self.key.generation, self.end))
        out: CIMultiDict[str] = CIMultiDict()
        out[h.CONTENT_TYPE] = self.content_type
        out[h.STREAM_NEXT_OFFSET] = end
        out[h.ETAG] = caching.etag(start, end, closed=False)
        out[h.CACHE_CONTROL] = self.cache_control
        if self.surrogate_key:
            out[h.SURROGATE_KEY] = self.surrogate_key
            out[h.CACHE_TAG] = self.surrogate_key
        return body, out


def is_immutable(cache_control: str | None) -> bool:
    return cache_control is not None and "immutable" in cache_control and "no-store" not in cache_control
