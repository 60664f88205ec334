"""Format 1 of a stream's records (manifest version 1): one `log` file of framed records.

Read only now: a data directory of this format is upgraded in place at start-up
(file/upgrade.py) to format 2 (file/batch_index.py); `encode` stays for the tests that build such
a directory. Pure bytes, no I/O.

    u32 crc32      over every byte after this field up to the end of the record
    u32 body_len   bytes after this field
    metadata       file/record_meta.py
    payload        the rest of the body

A record is valid only if it is complete and its checksum matches; recovery keeps the longest
prefix of valid records, so a torn or garbage tail is cut off and a half-written append is never
replayed. The payload is stored exactly as it is served, so reads copy it out with one slice.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from plugin_streams.origin.storage.base import Record
from plugin_streams.origin.storage.file import record_meta

_PREFIX: Final = struct.Struct("<II")
PREFIX_SIZE: Final = _PREFIX.size
MAX_BODY: Final = 2**32 - 1


def encode(record: Record) -> tuple[bytes, int]:
    """The header of a record (everything before the payload) and the header's length.

    The payload itself is written after the header without being copied (see io.writev).
    """
    meta = record_meta.encode(record)
    body_len = len(meta) + len(record.payload)
    if body_len > MAX_BODY:
        raise ValueError("record too large")
    crc = zlib.crc32(record.payload, zlib.crc32(_PREFIX.pack(0, body_len)[4:] + meta))
    header = _PREFIX.pack(crc, body_len) + meta
    return header, len(header)


@dataclass(frozen=True, slots=True)
class Scanned:
    """One valid record found by `scan`: where its payload lies, and its metadata."""

    end: int  # file position just after the record
    payload_start: int
    payload_len: int
    record: Record  # with an empty payload: metadata only


def scan(data: memoryview | bytes, start: int = 0) -> Iterator[Scanned]:
    """Valid records from `start`, stopping silently at the first invalid or incomplete one."""
    view = memoryview(data)
    pos = start
    size = len(view)
    while pos + PREFIX_SIZE <= size:
        crc, body_len = _PREFIX.unpack_from(view, pos)
        body_start = pos + PREFIX_SIZE
        end = body_start + body_len
        if body_len == 0 or end > size:
            return
        if zlib.crc32(view[pos + 4 : end]) != crc:
            return
        try:
            record, meta_end = record_meta.parse(view, body_start, end)
        except (ValueError, UnicodeDecodeError, struct.error):
            return
        yield Scanned(end, meta_end, end - meta_end, record)
        pos = end
