"""Byte-level writer and reader shared by the record and snapshot encodings.

Fixed-width big-endian integers and length-prefixed strings and bytes: one value has one
encoding, so equal states and records encode to equal bytes. The reader checks every length
against what is left and raises `CorruptEncoding` rather than reading past the end.
"""

from __future__ import annotations

import struct
from typing import Final

_U8: Final = struct.Struct(">B")
_U32: Final = struct.Struct(">I")
_I64: Final = struct.Struct(">q")


class CorruptEncoding(ValueError):
    """Bytes that are not a valid queue record or snapshot (truncated, unknown version or tag, bad checksum)."""


class Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> None:
        self._parts.append(_U8.pack(value))

    def u32(self, value: int) -> None:
        self._parts.append(_U32.pack(value))

    def i64(self, value: int) -> None:
        self._parts.append(_I64.pack(value))

    def raw(self, value: bytes) -> None:
        self.u32(len(value))
        self._parts.append(value)

    def text(self, value: str) -> None:
        self.raw(value.encode("utf-8"))

    def optional_text(self, value: str | None) -> None:
        self.u8(value is not None)
        if value is not None:
            self.text(value)

    def texts(self, values: tuple[str, ...]) -> None:
        self.u32(len(values))
        for value in values:
            self.text(value)

    def raws(self, values: tuple[bytes, ...]) -> None:
        self.u32(len(values))
        for value in values:
            self.raw(value)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def _take(self, size: int) -> memoryview:
        if self._at + size > len(self._data):
            raise CorruptEncoding(f"truncated: {size} bytes wanted at {self._at} of {len(self._data)}")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def u8(self) -> int:
        return int(_U8.unpack(self._take(1))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise CorruptEncoding(f"a flag byte is {value}")
        return value == 1

    def raw(self) -> bytes:
        return bytes(self._take(self.u32()))

    def text(self) -> str:
        try:
            return self.raw().decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorruptEncoding("a text field is not UTF-8") from error

    def optional_text(self) -> str | None:
        return self.text() if self.flag() else None

    def texts(self) -> tuple[str, ...]:
        return tuple(self.text() for _ in range(self.u32()))

    def raws(self) -> tuple[bytes, ...]:
        return tuple(self.raw() for _ in range(self.u32()))

    def end(self) -> None:
        if self._at != len(self._data):
            raise CorruptEncoding(f"{len(self._data) - self._at} bytes left over")
