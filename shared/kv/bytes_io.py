"""Varints and length-prefixed blobs: the two primitives of the KV's binary records and snapshots.

Integers are unsigned 64-bit LEB128 (7 bits a byte, low bits first); a blob is its length as a varint,
then its bytes. Readers raise the caller's error class, so a damaged commit record and a damaged
snapshot each say what they are.
"""

from __future__ import annotations

from typing import Final

_MAX_VARINT_SHIFT: Final = 63  # the 10th byte carries bit 63: varints here are unsigned 64-bit


def write_varint(out: bytearray, value: int) -> None:
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varints hold unsigned 64-bit integers, not {value}")
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def write_blob(out: bytearray, data: bytes) -> None:
    write_varint(out, len(data))
    out += data


class ByteReader:
    """Reads varints, blobs and fixed-size fields from `data`, raising `error` when it runs out."""

    __slots__ = ("at", "data", "error")

    def __init__(self, data: bytes, error: type[ValueError]) -> None:
        self.data = data
        self.at = 0
        self.error = error

    def byte(self) -> int:
        return self.take(1)[0]

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise self.error("data ends early")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > _MAX_VARINT_SHIFT:
                raise self.error("overlong varint")

    def blob(self) -> bytes:
        return self.take(self.varint())

    def at_end(self) -> bool:
        return self.at == len(self.data)
