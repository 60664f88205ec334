"""Commit records: the bytes one atomic commit appends to its database's change stream.

The change stream is the KV store's log: the origin checks a commit against the current state,
appends its record (one append, so the commit is in the log entirely or not at all), takes the
record's offset as the commit's versionstamp, and applies the record to the index. Start-up
replays records after the last snapshot. So a record must carry everything `apply` needs, and
the same record must always decode to the same commit:

- the commit's time (`committed_at_ms`), because expiry is decided by commit time, never by the
  clock of whoever replays the log;
- the mutations in order, with keys and values in their stored (encoded) forms;
- not the checks: they were decided against the state the record is appended on top of, which
  a replay reproduces exactly; re-deciding them would be redundant.

Layout (integers are unsigned LEB128 varints; `bytes` is a varint length then the bytes):

    0x01 (format version) | committed_at_ms | mutation count | mutations...
    set      0x01 key:bytes value:bytes expire_in_ms (0 = never; otherwise >= 1)
    delete   0x02 key:bytes
    sum      0x03 key:bytes operand (8 bytes big-endian)
    min      0x04 key:bytes operand
    max      0x05 key:bytes operand
    enqueue  0x06 value:bytes delay_ms keys_if_undelivered:(count, bytes...)
                  backoff:(0 = default | 1 + count, intervals...)

The encoding of a commit is a function of it alone (no maps, no floats), so equal commits give
equal bytes and a record can be compared or hashed as bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from plugin_streams.shared.kv.bytes_io import ByteReader, write_blob, write_varint
from plugin_streams.shared.kv.commits import (
    AtomicCommit,
    DeleteMutation,
    Enqueue,
    Mutation,
    SetMutation,
    U64Mutation,
    U64Op,
)

RECORD_VERSION: Final = 0x01
_SET: Final = 0x01
_DELETE: Final = 0x02
_U64_CODES: Final[dict[str, int]] = {"sum": 0x03, "min": 0x04, "max": 0x05}
_U64_OPS: Final[dict[int, U64Op]] = {0x03: "sum", 0x04: "min", 0x05: "max"}
_ENQUEUE: Final = 0x06


class CorruptRecord(ValueError):
    """Bytes that are not a commit record this code wrote (a damaged log, or a newer format)."""


@dataclass(frozen=True, slots=True)
class CommitRecord:
    committed_at_ms: int
    mutations: tuple[Mutation, ...]


def encode_record(commit: AtomicCommit, committed_at_ms: int) -> bytes:
    """The record of an already validated (and checked) commit, committed at `committed_at_ms`."""
    out = bytearray([RECORD_VERSION])
    write_varint(out, committed_at_ms)
    write_varint(out, len(commit.mutations))
    for mutation in commit.mutations:
        _encode_mutation(out, mutation)
    return bytes(out)


def _encode_mutation(out: bytearray, mutation: Mutation) -> None:
    if isinstance(mutation, SetMutation):
        out.append(_SET)
        write_blob(out, mutation.key)
        write_blob(out, mutation.value)
        write_varint(out, mutation.expire_in_ms or 0)
    elif isinstance(mutation, DeleteMutation):
        out.append(_DELETE)
        write_blob(out, mutation.key)
    elif isinstance(mutation, U64Mutation):
        out.append(_U64_CODES[mutation.op])
        write_blob(out, mutation.key)
        out += mutation.operand.to_bytes(8, "big")
    else:
        _encode_enqueue(out, mutation)


def _encode_enqueue(out: bytearray, enqueue: Enqueue) -> None:
    out.append(_ENQUEUE)
    write_blob(out, enqueue.value)
    write_varint(out, enqueue.delay_ms)
    write_varint(out, len(enqueue.keys_if_undelivered))
    for key in enqueue.keys_if_undelivered:
        write_blob(out, key)
    if enqueue.backoff_schedule is None:
        write_varint(out, 0)
        return
    write_varint(out, 1 + len(enqueue.backoff_schedule))
    for interval in enqueue.backoff_schedule:
        write_varint(out, interval)


def decode_record(data: bytes) -> CommitRecord:
    """The commit record in `data`; CorruptRecord if it is not exactly one."""
    reader = ByteReader(data, CorruptRecord)
    version = reader.byte()
    if version != RECORD_VERSION:
        raise CorruptRecord(f"commit record format {version} is not {RECORD_VERSION}")
    committed_at_ms = reader.varint()
    mutations = tuple(_decode_mutation(reader) for _ in range(reader.varint()))
    if not reader.at_end():
        raise CorruptRecord("commit record has trailing bytes")
    return CommitRecord(committed_at_ms, mutations)


def _decode_set(reader: ByteReader) -> Mutation:
    key, value = reader.blob(), reader.blob()
    return SetMutation(key, value, reader.varint() or None)


def _decode_enqueue(reader: ByteReader) -> Mutation:
    value, delay = reader.blob(), reader.varint()
    keys = tuple(reader.blob() for _ in range(reader.varint()))
    marker = reader.varint()
    schedule = None if marker == 0 else tuple(reader.varint() for _ in range(marker - 1))
    return Enqueue(value, delay, keys, schedule)


_DECODERS: Final[dict[int, Callable[[ByteReader], Mutation]]] = {
    _SET: _decode_set,
    _DELETE: lambda reader: DeleteMutation(reader.blob()),
    _ENQUEUE: _decode_enqueue,
}


def _decode_mutation(reader: ByteReader) -> Mutation:
    code = reader.byte()
    if code in _U64_OPS:
        key = reader.blob()
        return U64Mutation(_U64_OPS[code], key, int.from_bytes(reader.take(8), "big"))
    decoder = _DECODERS.get(code)
    if decoder is None:
        raise CorruptRecord(f"commit record has unknown mutation code 0x{code:02x}")
    return decoder(reader)
