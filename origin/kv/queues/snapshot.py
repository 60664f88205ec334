"""Snapshots of a queue's state: checksummed bytes that restore it without replaying the whole log.

A snapshot records the position of the last record applied, so start-up is: `load_snapshot`,
then apply the stream's records after `state.position`. The bytes are canonical (maps are
written in key order, dead letters in their DLQ order), so two states that would take the same
decisions encode identically: tests compare live and replayed states by their snapshots.

Layout: magic, format version, body, then a BLAKE2b-128 digest of everything before it; a torn
or altered snapshot fails its digest and is refused, and the caller falls back to an older
snapshot or to a replay from the start.
"""

from __future__ import annotations

import hashlib
from typing import Final

from plugin_streams.origin.kv.queues.codec import read_message, write_message
from plugin_streams.origin.kv.queues.group import DeadLetter, GroupState, Lease
from plugin_streams.origin.kv.queues.records import DeadReason
from plugin_streams.origin.kv.queues.state import QueueState
from plugin_streams.origin.kv.queues.wire import CorruptEncoding, Reader, Writer

MAGIC: Final = b"PSQS"
SNAPSHOT_VERSION: Final = 1
_DIGEST_SIZE: Final = 16


def encode_snapshot(state: QueueState) -> bytes:
    out = Writer()
    out.optional_text(state.position)
    out.i64(state.next_token)
    out.optional_text(state.last_message_id)
    out.optional_text(state.trimmed_through)
    out.u32(len(state.message_ids))
    for message_id in state.message_ids:
        write_message(out, state.messages[message_id])
    out.u32(len(state.groups))
    for name in sorted(state.groups):
        out.text(name)
        _write_group(out, state.groups[name])
    body = MAGIC + bytes([SNAPSHOT_VERSION]) + out.getvalue()
    return body + _digest(body)


def load_snapshot(data: bytes) -> QueueState:
    body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
    if len(data) < len(MAGIC) + 1 + _DIGEST_SIZE or not body.startswith(MAGIC):
        raise CorruptEncoding("not a queue snapshot")
    if _digest(body) != digest:
        raise CorruptEncoding("queue snapshot checksum mismatch: torn or altered")
    if body[len(MAGIC)] != SNAPSHOT_VERSION:
        raise CorruptEncoding(f"queue snapshot format {body[len(MAGIC)]} is unknown")
    source = Reader(body[len(MAGIC) + 1 :])
    state = QueueState()
    state.position = source.optional_text()
    state.next_token = source.i64()
    state.last_message_id = source.optional_text()
    state.trimmed_through = source.optional_text()
    for _ in range(source.u32()):
        message = read_message(source)
        state.messages[message.id] = message
        state.message_ids.append(message.id)
    if state.message_ids != sorted(set(state.message_ids)):
        raise CorruptEncoding("queue snapshot messages are not in strictly ascending id order")
    for _ in range(source.u32()):
        name = source.text()
        state.groups[name] = _read_group(source)
    source.end()
    return state


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_DIGEST_SIZE).digest()


def _write_group(out: Writer, group: GroupState) -> None:
    out.i64(group.redeliveries)
    out.i64(group.acked)
    _write_int_map(out, group.ready_due)
    out.u32(len(group.leases))
    for token in sorted(group.leases):
        lease = group.leases[token]
        out.i64(token)
        out.text(lease.message_id)
        out.text(lease.worker)
        out.i64(lease.attempt)
        out.i64(lease.expires_ms)
    _write_int_map(out, group.attempts)
    out.u32(len(group.last_error))
    for message_id in sorted(group.last_error):
        out.text(message_id)
        out.text(group.last_error[message_id])
    out.u32(len(group.dead))
    for entry in group.dead.values():
        out.text(entry.message_id)
        out.i64(entry.attempts)
        out.text(entry.reason.value)
        out.text(entry.last_error)
        out.i64(entry.dead_at_ms)


def _read_group(source: Reader) -> GroupState:
    group = GroupState()
    group.redeliveries, group.acked = source.i64(), source.i64()
    for message_id, due_ms in _read_int_map(source).items():
        group.make_ready(message_id, due_ms)
    leases = {}
    for _ in range(source.u32()):
        token, message_id, worker = source.i64(), source.text(), source.text()
        leases[token] = Lease(message_id, worker, source.i64(), source.i64())
    attempts = _read_int_map(source)
    last_error = {source.text(): source.text() for _ in range(source.u32())}
    group.restore(leases, attempts, last_error)
    for _ in range(source.u32()):
        message_id, attempts_made, reason_text = source.text(), source.i64(), source.text()
        try:
            reason = DeadReason(reason_text)
        except ValueError as error:
            raise CorruptEncoding(f"dead-letter reason {reason_text!r} is unknown") from error
        group.dead[message_id] = DeadLetter(message_id, attempts_made, reason, source.text(), source.i64())
    return group


def _write_int_map(out: Writer, values: dict[str, int]) -> None:
    out.u32(len(values))
    for key in sorted(values):
        out.text(key)
        out.i64(values[key])


def _read_int_map(source: Reader) -> dict[str, int]:
    return {source.text(): source.i64() for _ in range(source.u32())}
