"""Offsets: `%016d_%016d`, the incarnation's generation then a position in the stream.

Fixed width makes string order equal numeric order, as PROTOCOL.md §8 requires. The first
field is the generation of the stream incarnation that minted the offset (never 0), so a stream
deleted and created again at the same path never reuses an offset of its predecessor and a
cache keyed on URLs cannot mix the two. The second field is the position: bytes of payload
before this point (for JSON streams, bytes of the stored comma-terminated messages).
The all-zero offset is never minted; clients (and the conformance suite) use it to mean
"before any data".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.headers import OFFSET_NOW, OFFSET_START

FIELD_WIDTH: Final = 16
MAX_FIELD: Final = 10**FIELD_WIDTH - 1
_OFFSET_RE: Final = re.compile(r"\A([0-9]{16})_([0-9]{16})\Z")


@dataclass(frozen=True, slots=True, order=True)
class Offset:
    generation: int
    position: int

    def __str__(self) -> str:
        return f"{self.generation:016d}_{self.position:016d}"

    @property
    def is_zero(self) -> bool:
        return self.generation == 0 and self.position == 0


ZERO: Final = Offset(0, 0)


class Sentinel:
    """The two reserved offset values, `-1` (stream start) and `now` (the tail)."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Sentinel({self.token!r})"


START: Final = Sentinel(OFFSET_START)
NOW: Final = Sentinel(OFFSET_NOW)

RequestedOffset = Offset | Sentinel


@lru_cache(maxsize=8192)
def parse_offset(text: str) -> Offset:
    """Parse a concrete offset; sentinels are not accepted here (see parse_read_offset).

    Cached: live readers send the same few offsets over and over (an Offset is immutable, and a
    malformed text raises, which is never cached)."""
    match = _OFFSET_RE.match(text)
    if match is None:
        raise BadRequest(f"malformed offset {text[:64]!r}")
    return Offset(int(match.group(1)), int(match.group(2)))


def parse_read_offset(text: str) -> RequestedOffset:
    if text == OFFSET_START:
        return START
    if text == OFFSET_NOW:
        return NOW
    return parse_offset(text)
