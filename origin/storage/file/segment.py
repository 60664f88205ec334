"""Record framing of the log files: pure bytes, no I/O.

    u32 crc32      over every byte after this field up to the end of the record
    u32 body_len   bytes after this field
    u8  flags      1 closed · 2 producer tuple follows · 4 Stream-Seq follows · 8 time follows
    [u64 epoch, u64 seq, u16 id_len, id]   when flag 2
    [u16 seq_len, seq]                     when flag 4
    [u64 unix ms the append was accepted]  when flag 8 (retention by age)
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
from plugin_streams.shared.producer import ProducerTuple

_PREFIX: Final = struct.Struct("<II")
_PRODUCER: Final = struct.Struct("<QQH")
_LENGTH16: Final = struct.Struct("<H")
PREFIX_SIZE: Final = _PREFIX.size
FLAG_CLOSED: Final = 1
FLAG_PRODUCER: Final = 2
FLAG_STREAM_SEQ: Final = 4
FLAG_TIME: Final = 8
_TIME: Final = struct.Struct("<Q")
MAX_BODY: Final = 2**32 - 1


def _meta(record: Record) -> bytes:
    flags = 0
    parts = [b""]
    if record.closed:
        flags |= FLAG_CLOSED
    if record.producer is not None:
        flags |= FLAG_PRODUCER
        pid = record.producer.producer_id.encode("utf-8", "surrogatepass")
        parts.append(_PRODUCER.pack(record.producer.epoch, record.producer.seq, len(pid)) + pid)
    if record.stream_seq is not None:
        flags |= FLAG_STREAM_SEQ
        seq = record.stream_seq.encode("utf-8", "surrogatepass")
        parts.append(_LENGTH16.pack(len(seq)) + seq)
    if record.written_ms is not None:
        flags |= FLAG_TIME
        parts.append(_TIME.pack(record.written_ms))
    parts[0] = bytes((flags,))
    return b"".join(parts)


def encode(record: Record) -> tuple[bytes, int]:
    """The header of a record (everything before the payload) and the header's length.

    The payload itself is written after the header without being copied (see io.writev).
    """
    meta = _meta(record)
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


def _parse_meta(body: memoryview) -> tuple[Record, int]:
    flags = body[0]
    pos = 1
    producer = None
    stream_seq = None
    if flags & FLAG_PRODUCER:
        epoch, seq, id_len = _PRODUCER.unpack_from(body, pos)
        pos += _PRODUCER.size
        producer = ProducerTuple(bytes(body[pos : pos + id_len]).decode("utf-8", "surrogatepass"), epoch, seq)
        pos += id_len
    if flags & FLAG_STREAM_SEQ:
        (seq_len,) = _LENGTH16.unpack_from(body, pos)
        pos += _LENGTH16.size
        stream_seq = bytes(body[pos : pos + seq_len]).decode("utf-8", "surrogatepass")
        pos += seq_len
    written_ms = None
    if flags & FLAG_TIME:
        (written_ms,) = _TIME.unpack_from(body, pos)
        pos += _TIME.size
    if pos > len(body):
        raise ValueError("metadata overruns record")
    return Record(b"", bool(flags & FLAG_CLOSED), producer, stream_seq, written_ms), pos


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
            record, meta_len = _parse_meta(view[body_start:end])
        except (ValueError, UnicodeDecodeError, struct.error):
            return
        yield Scanned(end, body_start + meta_len, body_len - meta_len, record)
        pos = end
