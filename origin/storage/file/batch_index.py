"""Format 2 of a stream's records: raw payload bytes in `data`, their boundaries in `index`.

The data file holds the payloads back to back, exactly as they are served, so any run of
records is one slice of it: a catch-up read is one `pread` whatever the records' sizes. The
index file holds one entry per written batch (one group commit):

    u32 crc32        over every byte of the entry after this field
    u32 body_len     bytes after this field
    u64 data_start   where the batch's payloads start in the data file
    u32 data_crc     crc32 of the batch's payloads (data_start .. data_start + their total)
    u32 count        records in the batch (at least one)
    count times:
        u32 payload_len
        metadata     file/record_meta.py (closure, producer tuple, Stream-Seq, accept time)

A batch is valid only if its entry is complete with a matching checksum, it starts where the
previous batch's payloads ended, and its payloads are all in the data file with a matching
checksum. Recovery keeps the longest valid prefix of batches and cuts both files back to it, so
the two files need no ordering between their writes or syncs: a batch whose entry reached the
disk without its payloads (or the other way round) is simply not there. Pure bytes, no I/O.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from plugin_streams.origin.storage.base import Record
from plugin_streams.origin.storage.file import record_meta

_PREFIX: Final = struct.Struct("<II")
_HEAD: Final = struct.Struct("<QII")
_LENGTH: Final = struct.Struct("<I")
PREFIX_SIZE: Final = _PREFIX.size
MAX_BODY: Final = 2**32 - 1


def data_crc(payloads: Sequence[bytes], crc: int = 0) -> int:
    for payload in payloads:
        crc = zlib.crc32(payload, crc)
    return crc


def encode(data_start: int, records: Sequence[Record]) -> bytes:
    """The index entry of a batch whose payloads are written at `data_start` of the data file."""
    payloads = [record.payload for record in records]
    return encode_lengths(data_start, [len(p) for p in payloads], records, data_crc(payloads))


def encode_lengths(data_start: int, lengths: Sequence[int], metas: Sequence[Record], payload_crc: int) -> bytes:
    """An index entry from each record's payload length and metadata (`metas` payloads unused)."""
    if not metas:
        raise ValueError("a batch holds at least one record")
    parts = [b"", _HEAD.pack(data_start, payload_crc, len(metas))]
    for length, record in zip(lengths, metas, strict=True):
        parts.append(_LENGTH.pack(length))
        parts.append(record_meta.encode(record))
    body = b"".join(parts)
    if len(body) > MAX_BODY:
        raise ValueError("batch entry too large")
    size = _LENGTH.pack(len(body))
    return _LENGTH.pack(zlib.crc32(body, zlib.crc32(size))) + size + body


@dataclass(frozen=True, slots=True)
class Batch:
    """One valid batch found by `scan`."""

    entry_end: int  # index file position just after the entry
    data_start: int
    payload_crc: int
    lengths: list[int]  # each record's payload length
    records: list[Record]  # metadata only (empty payloads)

    @property
    def data_end(self) -> int:
        return self.data_start + sum(self.lengths)


def _parse(index: memoryview, pos: int, end: int) -> tuple[int, int, list[int], list[Record]]:
    data_start, payload_crc, count = _HEAD.unpack_from(index, pos)
    pos += _HEAD.size
    if count == 0:
        raise ValueError("empty batch")
    lengths: list[int] = []
    records: list[Record] = []
    for _ in range(count):
        (length,) = _LENGTH.unpack_from(index, pos)
        record, pos = record_meta.parse(index, pos + _LENGTH.size, end)
        lengths.append(length)
        records.append(record)
    if pos != end:
        raise ValueError("entry length does not match its records")
    return data_start, payload_crc, lengths, records


def scan(
    index: memoryview | bytes, data: memoryview | bytes | None, start: int = 0, data_at: int = 0
) -> Iterator[Batch]:
    """Valid batches from index position `start` (whose payloads start at `data_at`).

    Stops silently at the first invalid or incomplete batch. With `data` None the payload
    checksums are not verified (for files this process wrote and synced itself).
    """
    view = memoryview(index)
    size = len(view)
    pos = start
    while pos + PREFIX_SIZE <= size:
        crc, body_len = _PREFIX.unpack_from(view, pos)
        end = pos + PREFIX_SIZE + body_len
        if body_len < _HEAD.size or end > size or zlib.crc32(view[pos + 4 : end]) != crc:
            return
        try:
            data_start, payload_crc, lengths, records = _parse(view, pos + PREFIX_SIZE, end)
        except (ValueError, UnicodeDecodeError, struct.error):
            return
        data_end = data_start + sum(lengths)
        if data_start != data_at:
            return
        if data is not None and not _payloads_match(data, data_start, data_end, payload_crc):
            return
        yield Batch(end, data_start, payload_crc, lengths, records)
        pos = end
        data_at = data_end


def _payloads_match(data: memoryview | bytes, start: int, end: int, crc: int) -> bool:
    return end <= len(data) and zlib.crc32(memoryview(data)[start:end]) == crc
