"""Snapshots of the KV index: every stored entry, the versionstamp they cover, and a checksum.

Start-up loads the newest snapshot and replays the change stream's records after the offset of
its versionstamp (`Versionstamp.to_offset`), so the log can be trimmed up to a snapshot and a
restart does not replay history. A snapshot is bytes, so any storage can keep it:

    b"PSKVSNAP" | format 0x01 | has_versionstamp (0/1) [| versionstamp, 10 bytes] | clock_ms
    | entry count | entries in key order: key:blob value:blob versionstamp(10) expires_at(0 = never, else + 1)
    | BLAKE2b-128 of everything before it

Integers are varints and blobs length-prefixed (shared/kv/bytes_io.py). Expired entries are kept
(they are still stored until a commit deletes them), so a loaded index answers exactly as the one
that was saved. A damaged or truncated snapshot fails its checksum and raises CorruptSnapshot;
the caller then falls back to an older snapshot or a full replay, never to a wrong state.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Final

from plugin_streams.origin.kv.index import Entry, KvIndex
from plugin_streams.shared.kv.bytes_io import ByteReader, write_blob, write_varint
from plugin_streams.shared.kv.versionstamps import Versionstamp

MAGIC: Final = b"PSKVSNAP"
FORMAT: Final = 0x01
_DIGEST_BYTES: Final = 16


class CorruptSnapshot(ValueError):
    """Bytes that are not an intact snapshot of this format."""


def _digest(data: bytes | bytearray) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest()


def encode_snapshot(index: KvIndex) -> bytes:
    out = bytearray(MAGIC)
    out.append(FORMAT)
    if index.last_versionstamp is None:
        out.append(0)
    else:
        out.append(1)
        out += index.last_versionstamp.to_bytes()
    write_varint(out, index.clock_ms)
    entries = index.entries()
    write_varint(out, len(entries))
    for entry in entries:
        write_blob(out, entry.key)
        write_blob(out, entry.value)
        out += entry.versionstamp.to_bytes()
        write_varint(out, 0 if entry.expires_at_ms is None else entry.expires_at_ms + 1)
    out += _digest(out)
    return bytes(out)


def load_snapshot(data: bytes) -> KvIndex:
    """The index `data` records; CorruptSnapshot if it is damaged or not a snapshot."""
    body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if len(data) < len(MAGIC) + 1 + _DIGEST_BYTES or not body.startswith(MAGIC):
        raise CorruptSnapshot("not a KV snapshot")
    if _digest(body) != digest:
        raise CorruptSnapshot("KV snapshot checksum mismatch")
    reader = ByteReader(body, CorruptSnapshot)
    reader.take(len(MAGIC))
    if (version := reader.byte()) != FORMAT:
        raise CorruptSnapshot(f"KV snapshot format {version} is not {FORMAT}")
    last = Versionstamp.from_bytes(reader.take(10)) if reader.byte() else None
    clock_ms = reader.varint()
    entries = [_read_entry(reader) for _ in range(reader.varint())]
    if not reader.at_end():
        raise CorruptSnapshot("KV snapshot has trailing bytes")
    if any(a.key >= b.key for a, b in itertools.pairwise(entries)):
        raise CorruptSnapshot("KV snapshot entries are not in strictly increasing key order")
    return KvIndex.restore(entries, last, clock_ms)


def _read_entry(reader: ByteReader) -> Entry:
    key, value = reader.blob(), reader.blob()
    versionstamp = Versionstamp.from_bytes(reader.take(10))
    expires = reader.varint()
    return Entry(key, value, versionstamp, None if expires == 0 else expires - 1)
