"""Chunk values: an immutable catch-up response of the origin, and how to answer from it.

A chunk is the origin's answer to a read from `start` that stopped at a chunk boundary before
the tail (Cache-Control `immutable`): its bytes can never change. A read from any later byte of
a byte stream, or any later message boundary of a JSON stream, inside the chunk ends at the same
boundary, so it is answered with a slice of the chunk.

"Immutable" is about the bytes, not the stream: a copy lives no longer than the origin's max-age
(capped by the stream's TTL or Expires-At, or a signature), from when the edge received it, and
says how long it has been held (`Age`), so a cache in front never keeps it longer either.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from multidict import CIMultiDict

from plugin_streams.shared import caching, content_types, jsonmode
from plugin_streams.shared import headers as h
from plugin_streams.shared.jsonmarks import MessageMarks
from plugin_streams.shared.offsets import Offset


@dataclass(frozen=True, slots=True)
class ChunkKey:
    scope: str  # stream path, plus a credential hash when the response was private
    generation: int
    start: int


#: Marks a cache scope that holds REST read pages (edge.rest.reads), one variant (format and
#: limit) each: "<scope>\0rest:<variant>". The stream's path still leads the scope, so dropping
#: a stream drops its pages too. A page answers only a read from its own start.
REST_PAGES = "\0rest:"


def rest_scope(owner: str, variant: str) -> str:
    return owner + REST_PAGES + variant


#: Marks a cache scope that holds a stream's start page (edge.start_pages): the origin's answer
#: to a read from `offset=-1`, "<scope>\0start". It answers only reads from the start.
START_PAGE = "\0start"


def start_scope(owner: str) -> str:
    return owner + START_PAGE


#: Bytes of a JSON chunk scanned for message boundaries (once, on the loop). A read starting
#: past them is not answered from the chunk but asked of the origin, which indexes its records.
BOUNDARY_SCAN_BYTES = 64 * 1024


class ChunkBoundaries:
    """Message boundaries of a JSON chunk's first BOUNDARY_SCAN_BYTES, found on first use.

    A chunk may hold millions of messages; scanning all of them when it is stored froze the
    edge for seconds. Reads from inside a chunk are rare (readers resume at chunk ends), so a
    bounded, lazy scan serves the common ones and leaves the rest to the origin.
    """

    __slots__ = ("_marks",)

    def __init__(self) -> None:
        self._marks: MessageMarks | None = None

    def is_end(self, body: bytes, skip: int) -> bool:
        # body[1:] is the stored form but for its last byte (`]`, not `,`): same boundaries
        # inside the chunk, and its end is never asked here.
        stored = memoryview(body)[1:]
        if self._marks is None:
            self._marks = MessageMarks.build(stored, budget=BOUNDARY_SCAN_BYTES)
        return self._marks.knows(skip) and self._marks.is_end(stored, skip)


@dataclass(frozen=True, slots=True)
class Chunk:
    key: ChunkKey
    end: int
    body: bytes
    content_type: str
    cache_control: str
    surrogate_key: str | None
    # JSON chunks: where a message ends (from the chunk start), i.e. valid read starts.
    boundaries: ChunkBoundaries | None = field(default=None, compare=False)
    stored: float = field(default=0.0, compare=False)  # unix seconds: when the edge received it
    expires: float = field(default=math.inf, compare=False)  # unix seconds: stored + max-age

    @classmethod
    def make(
        cls,
        key: ChunkKey,
        end: int,
        body: bytes,
        content_type: str,
        cache_control: str,
        surrogate_key: str | None,
        stored: float | None = None,
    ) -> Chunk:
        ends = ChunkBoundaries() if content_types.is_json(content_type) else None
        stored = time.time() if stored is None else stored
        lifetime = caching.max_age(cache_control) or 0  # no max-age: nothing to serve it from
        return cls(key, end, body, content_type, cache_control, surrogate_key, ends, stored, stored + lifetime)

    @property
    def lifetime(self) -> float:
        return self.expires - self.stored

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored))

    def covers(self, position: int) -> bool:
        if position == self.key.start:
            return True
        if not self.key.start < position < self.end or REST_PAGES in self.key.scope or START_PAGE in self.key.scope:
            return False
        return self.boundaries is None or self.boundaries.is_end(self.body, position - self.key.start)

    def answer(self, position: int, now: float | None = None) -> tuple[bytes, CIMultiDict[str]]:
        """Body and headers of the origin's response to a read from `position`, as held `now`."""
        skip = position - self.key.start
        if skip == 0:
            body = self.body
        elif self.boundaries is None:
            body = self.body[skip:]
        else:
            body = jsonmode.frame(jsonmode.unframe(self.body)[skip:])
        start = str(Offset(self.key.generation, position))
        end = str(Offset(self.key.generation, self.end))
        out: CIMultiDict[str] = CIMultiDict()
        out[h.CONTENT_TYPE] = self.content_type
        out[h.STREAM_NEXT_OFFSET] = end
        out[h.ETAG] = caching.etag(start, end, closed=False)
        out[h.CACHE_CONTROL] = self.cache_control
        out[h.AGE] = str(self.age(time.time() if now is None else now))
        if self.surrogate_key:
            out[h.SURROGATE_KEY] = self.surrogate_key
            out[h.CACHE_TAG] = self.surrogate_key
        return body, out


def is_immutable(cache_control: str | None) -> bool:
    return cache_control is not None and "immutable" in cache_control and "no-store" not in cache_control
