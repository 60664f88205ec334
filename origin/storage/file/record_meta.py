"""What a record carries besides its payload, as bytes: shared by both on-disk formats.

    u8  flags      1 closed · 2 producer tuple follows · 4 Stream-Seq follows · 8 time follows
    [u64 epoch, u64 seq, u16 id_len, id]   when flag 2
    [u16 seq_len, seq]                     when flag 4
    [u64 unix ms the append was accepted]  when flag 8 (retention by age)

Producer ids and Stream-Seq values are UTF-8 with lone surrogates kept (surrogatepass): the
protocol allows any header text and recovery must give back exactly what was accepted.
"""

from __future__ import annotations

import struct
from typing import Final

from plugin_streams.origin.storage.base import Record
from plugin_streams.shared.producer import ProducerTuple

_PRODUCER: Final = struct.Struct("<QQH")
_LENGTH16: Final = struct.Struct("<H")
_TIME: Final = struct.Struct("<Q")
FLAG_CLOSED: Final = 1
FLAG_PRODUCER: Final = 2
FLAG_STREAM_SEQ: Final = 4
FLAG_TIME: Final = 8
#: The metadata of a record with nothing to say but its accept time (the common case).
_TIME_ONLY: Final = bytes((FLAG_TIME,))


def encode(record: Record) -> bytes:
    if record.producer is None and record.stream_seq is None and not record.closed:
        if record.written_ms is None:
            return b"\x00"
        return _TIME_ONLY + _TIME.pack(record.written_ms)
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


def parse(data: memoryview, pos: int, end: int) -> tuple[Record, int]:
    """The metadata starting at `pos` (as a Record with an empty payload) and where it ends.

    Raises ValueError (or struct.error, UnicodeDecodeError) if it is malformed or passes `end`.
    """
    if pos >= end:
        raise ValueError("metadata missing")
    flags = data[pos]
    pos += 1
    producer = None
    stream_seq = None
    if flags & FLAG_PRODUCER:
        epoch, seq, id_len = _PRODUCER.unpack_from(data, pos)
        pos += _PRODUCER.size
        producer = ProducerTuple(bytes(data[pos : pos + id_len]).decode("utf-8", "surrogatepass"), epoch, seq)
        pos += id_len
    if flags & FLAG_STREAM_SEQ:
        (seq_len,) = _LENGTH16.unpack_from(data, pos)
        pos += _LENGTH16.size
        stream_seq = bytes(data[pos : pos + seq_len]).decode("utf-8", "surrogatepass")
        pos += seq_len
    written_ms = None
    if flags & FLAG_TIME:
        (written_ms,) = _TIME.unpack_from(data, pos)
        pos += _TIME.size
    if pos > end:
        raise ValueError("metadata overruns its record")
    return Record(b"", bool(flags & FLAG_CLOSED), producer, stream_seq, written_ms), pos
