"""Versionstamps: Deno's 10-byte commit versions, minted from the change stream's offsets.

A commit becomes one record in the database's change stream; the offset of that record (the
position just after it, as this project's offsets always are) is the commit's identity, and its
versionstamp is that offset packed into Deno's 10 bytes (20 lowercase hex characters):

    4 bytes  the stream incarnation's generation (offset field 1)
    6 bytes  the byte position in the stream (offset field 2), i.e. up to 256 TiB of change log

Within one change stream the generation is fixed and positions rise with every append, so
versionstamps rise strictly with each commit and every mutation of a commit shares its own; a
stream deleted and created again gets a higher generation, so they keep rising across that too.
The mapping is reversible (`to_offset`), so a versionstamp names the exact offset from which a
watch resumes just after that commit. Deno's own backends use an 8-byte counter plus 2 zero
bytes; clients treat versionstamps as opaque ordered strings, which these are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.offsets import Offset

VERSIONSTAMP_HEX_CHARS: Final = 20
_GENERATION_BITS: Final = 32
_POSITION_BITS: Final = 48
_HEX_RE: Final = re.compile(r"\A[0-9a-f]{20}\Z")


@dataclass(frozen=True, slots=True, order=True)
class Versionstamp:
    """An 80-bit commit version; `str()` gives Deno's 20-hex-character form."""

    value: int

    def __str__(self) -> str:
        return f"{self.value:020x}"

    def to_bytes(self) -> bytes:
        return self.value.to_bytes(10, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Versionstamp:
        if len(data) != 10:
            raise ValueError(f"a versionstamp is 10 bytes, not {len(data)}")
        return cls(int.from_bytes(data, "big"))

    @classmethod
    def from_offset(cls, offset: Offset) -> Versionstamp:
        """The versionstamp of the commit whose record ends at `offset` in the change stream."""
        if not 0 <= offset.generation < 1 << _GENERATION_BITS:
            raise ValueError(f"generation {offset.generation} does not fit a versionstamp's 32 bits")
        if not 0 <= offset.position < 1 << _POSITION_BITS:
            raise ValueError(f"position {offset.position} does not fit a versionstamp's 48 bits")
        return cls(offset.generation << _POSITION_BITS | offset.position)

    def to_offset(self) -> Offset:
        return Offset(self.value >> _POSITION_BITS, self.value & ((1 << _POSITION_BITS) - 1))


def parse_versionstamp(text: object) -> Versionstamp:
    """Parse a client's versionstamp (20 hex characters, case-insensitive); a 400 names the problem."""
    if not isinstance(text, str) or not _HEX_RE.match(text.lower()):
        raise BadRequest(f"versionstamp must be {VERSIONSTAMP_HEX_CHARS} hex characters, got {str(text)[:40]!r}")
    return Versionstamp(int(text, 16))
