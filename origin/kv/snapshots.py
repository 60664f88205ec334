"""A database snapshot: its key index and queue state at one offset of its change stream, as bytes.

Start-up restores the snapshot and replays only the events after `offset`, instead of the whole
log. The file holds the two snapshots that already exist (origin/kv/snapshot.py for the index,
origin/kv/queues/snapshot.py for the queue, each with its own digest) under one envelope:

    b"PSKVDBSN" | format 0x01 | db name:blob | generation:varint | position:varint
    | index snapshot:blob | queue snapshot:blob | BLAKE2b-128 of everything before it

The name refuses a file copied from another database, the offset's generation a file from an
earlier incarnation of the change stream (the loader checks it against the log), and the digest
a torn or altered file. Every refusal is `RefusedSnapshot`: the caller logs it and replays the log.

A snapshot is taken in two steps so that the event loop never encodes a big index: `capture`
runs in a thread while the database holds still between batches (`KvDatabase.while_still`) and
copies only references to the index's immutable entries plus the (trimmed, small) queue's bytes;
`encode` then runs in a thread with no hold on the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from plugin_streams.origin.kv import snapshot as index_snapshot
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.index import Entry, KvIndex
from plugin_streams.origin.kv.queues import CorruptEncoding, QueueState
from plugin_streams.origin.kv.queues import encode_snapshot as encode_queue
from plugin_streams.origin.kv.queues import load_snapshot as load_queue
from plugin_streams.shared.kv.bytes_io import ByteReader, write_blob, write_varint
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset

MAGIC: Final = b"PSKVDBSN"
FORMAT: Final = 0x01
_DIGEST_BYTES: Final = 16


class RefusedSnapshot(ValueError):
    """Bytes that are not an intact snapshot of this database in this format."""


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    """A restored snapshot: the state just after the event ending at `offset`."""

    offset: Offset
    index: KvIndex
    queue: QueueState


@dataclass(frozen=True, slots=True)
class Capture:
    """What a snapshot needs, copied between batches; `events_applied` is the database's count then."""

    db: str
    offset: Offset
    events_applied: int
    entries: Sequence[Entry]  # in key order; Entry is immutable, so references are a copy
    last_versionstamp: Versionstamp | None
    clock_ms: int
    queue: bytes


def capture(db: KvDatabase) -> Capture | None:
    """The database's durable state now (None before its first event). Call it through `while_still`."""
    if db.offset is None:
        return None
    index = db.index
    return Capture(
        db.name,
        db.offset,
        db.events_applied,
        index.entries(),
        index.last_versionstamp,
        index.clock_ms,
        encode_queue(db.queue),
    )


def encode(taken: Capture) -> bytes:
    index = KvIndex.restore(taken.entries, taken.last_versionstamp, taken.clock_ms)
    out = bytearray(MAGIC)
    out.append(FORMAT)
    write_blob(out, taken.db.encode())
    write_varint(out, taken.offset.generation)
    write_varint(out, taken.offset.position)
    write_blob(out, index_snapshot.encode_snapshot(index))
    write_blob(out, taken.queue)
    out += _digest(out)
    return bytes(out)


def decode(db: str, data: bytes) -> DatabaseSnapshot:
    """The snapshot of `db` that `data` holds; RefusedSnapshot if it is damaged, foreign or unknown."""
    body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if len(data) < len(MAGIC) + 1 + _DIGEST_BYTES or not body.startswith(MAGIC):
        raise RefusedSnapshot("not a KV database snapshot")
    if _digest(body) != digest:
        raise RefusedSnapshot("checksum mismatch: torn or altered")
    reader = ByteReader(body, RefusedSnapshot)
    reader.take(len(MAGIC))
    if (version := reader.byte()) != FORMAT:
        raise RefusedSnapshot(f"format {version} is not {FORMAT}")
    if (name := reader.blob()) != db.encode():
        raise RefusedSnapshot(f"it is a snapshot of database {name[:128]!r}")
    offset = Offset(reader.varint(), reader.varint())
    index_bytes, queue_bytes = reader.blob(), reader.blob()
    if not reader.at_end():
        raise RefusedSnapshot("trailing bytes")
    try:
        index = index_snapshot.load_snapshot(index_bytes)
        queue = load_queue(queue_bytes)
    except (index_snapshot.CorruptSnapshot, CorruptEncoding) as exc:
        raise RefusedSnapshot(str(exc)) from exc
    if index.last_versionstamp is not None and index.last_versionstamp > Versionstamp.from_offset(offset):
        raise RefusedSnapshot("its index is ahead of its offset")
    return DatabaseSnapshot(offset, index, queue)


def _digest(data: bytes | bytearray) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest()
