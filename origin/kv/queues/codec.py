"""The versioned binary encoding of queue records: `encode_record` and `decode_record`.

Layout: a format version byte, a record tag byte, then the record's fields in declaration
order (see `wire`). A decoder meeting a version it does not know refuses the record rather
than guessing; a later format adds a version and keeps decoding the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from plugin_streams.origin.kv.queues.errors import QueueInputError
from plugin_streams.origin.kv.queues.message import QueuedMessage
from plugin_streams.origin.kv.queues.records import (
    Acked,
    DeadLettered,
    DeadReason,
    Enqueued,
    Extended,
    GroupCreated,
    GroupReset,
    Leased,
    LeaseExpired,
    Nacked,
    QueueRecord,
    Redriven,
    Trimmed,
)
from plugin_streams.origin.kv.queues.wire import CorruptEncoding, Reader, Writer

FORMAT_VERSION: Final = 1


def encode_record(record: QueueRecord) -> bytes:
    out = Writer()
    out.u8(FORMAT_VERSION)
    out.u8(_TAGS[type(record)])
    _ENCODERS[type(record)](out, record)
    return out.getvalue()


def decode_record(data: bytes) -> QueueRecord:
    source = Reader(data)
    version = source.u8()
    if version != FORMAT_VERSION:
        raise CorruptEncoding(f"queue record format {version} is unknown (this build reads {FORMAT_VERSION})")
    tag = source.u8()
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise CorruptEncoding(f"queue record tag {tag} is unknown")
    record = decoder(source)
    source.end()
    return record


def write_message(out: Writer, message: QueuedMessage) -> None:
    out.text(message.id)
    out.raw(message.value)
    out.i64(message.enqueued_at_ms)
    out.i64(message.delay_ms)
    schedule = message.backoff_schedule_ms
    out.u8(schedule is not None)
    if schedule is not None:
        out.u32(len(schedule))
        for interval in schedule:
            out.i64(interval)
    out.raws(message.keys_if_undelivered)


def read_message(source: Reader) -> QueuedMessage:
    message_id, value, enqueued_at_ms, delay_ms = source.text(), source.raw(), source.i64(), source.i64()
    schedule = tuple(source.i64() for _ in range(source.u32())) if source.flag() else None
    keys = source.raws()
    try:
        return QueuedMessage(message_id, value, enqueued_at_ms, delay_ms, schedule, keys)
    except QueueInputError as error:
        raise CorruptEncoding(f"an encoded message is invalid: {error.reason}") from error


def _read_reason(source: Reader) -> DeadReason:
    text = source.text()
    try:
        return DeadReason(text)
    except ValueError as error:
        raise CorruptEncoding(f"dead-letter reason {text!r} is unknown") from error


def _write_enqueued(out: Writer, record: Enqueued) -> None:
    write_message(out, record.message)


def _write_group_created(out: Writer, record: GroupCreated) -> None:
    out.text(record.group)
    out.optional_text(record.replay_from)


def _write_leased(out: Writer, record: Leased) -> None:
    out.text(record.group)
    out.text(record.message_id)
    out.text(record.worker)
    out.i64(record.token)
    out.i64(record.attempt)
    out.i64(record.expires_ms)


def _write_acked(out: Writer, record: Acked) -> None:
    out.text(record.group)
    out.i64(record.token)


def _write_nacked(out: Writer, record: Nacked) -> None:
    out.text(record.group)
    out.i64(record.token)
    out.text(record.error)
    out.i64(record.retry_at_ms)


def _write_extended(out: Writer, record: Extended) -> None:
    out.text(record.group)
    out.i64(record.token)
    out.i64(record.expires_ms)


def _write_lease_expired(out: Writer, record: LeaseExpired) -> None:
    out.text(record.group)
    out.i64(record.token)
    out.i64(record.retry_at_ms)


def _write_dead_lettered(out: Writer, record: DeadLettered) -> None:
    out.text(record.group)
    out.i64(record.token)
    out.text(record.message_id)
    out.i64(record.attempts)
    out.text(record.reason.value)
    out.text(record.last_error)
    out.i64(record.dead_at_ms)
    out.raw(record.value)
    out.raws(record.keys_if_undelivered)


def _write_redriven(out: Writer, record: Redriven) -> None:
    out.text(record.group)
    out.texts(record.message_ids)
    out.i64(record.ready_at_ms)


def _write_group_reset(out: Writer, record: GroupReset) -> None:
    out.text(record.group)
    out.text(record.from_id)


def _write_trimmed(out: Writer, record: Trimmed) -> None:
    out.text(record.through_id)


def _read_dead_lettered(source: Reader) -> DeadLettered:
    group, token, message_id, attempts = source.text(), source.i64(), source.text(), source.i64()
    reason, last_error, dead_at_ms = _read_reason(source), source.text(), source.i64()
    return DeadLettered(group, token, message_id, attempts, reason, last_error, dead_at_ms, source.raw(), source.raws())


def _read_leased(source: Reader) -> Leased:
    group, message_id, worker = source.text(), source.text(), source.text()
    return Leased(group, message_id, worker, source.i64(), source.i64(), source.i64())


# The tags are part of the format: never renumber one, only add.
_TAGS: Final[dict[type, int]] = {
    Enqueued: 1,
    GroupCreated: 2,
    Leased: 3,
    Acked: 4,
    Nacked: 5,
    Extended: 6,
    LeaseExpired: 7,
    DeadLettered: 8,
    Redriven: 9,
    GroupReset: 10,
    Trimmed: 11,
}

_ENCODERS: Final[dict[type, Callable[[Writer, object], None]]] = {
    Enqueued: _write_enqueued,  # type: ignore[dict-item]
    GroupCreated: _write_group_created,  # type: ignore[dict-item]
    Leased: _write_leased,  # type: ignore[dict-item]
    Acked: _write_acked,  # type: ignore[dict-item]
    Nacked: _write_nacked,  # type: ignore[dict-item]
    Extended: _write_extended,  # type: ignore[dict-item]
    LeaseExpired: _write_lease_expired,  # type: ignore[dict-item]
    DeadLettered: _write_dead_lettered,  # type: ignore[dict-item]
    Redriven: _write_redriven,  # type: ignore[dict-item]
    GroupReset: _write_group_reset,  # type: ignore[dict-item]
    Trimmed: _write_trimmed,  # type: ignore[dict-item]
}

_DECODERS: Final[dict[int, Callable[[Reader], QueueRecord]]] = {
    1: lambda s: Enqueued(read_message(s)),
    2: lambda s: GroupCreated(s.text(), s.optional_text()),
    3: _read_leased,
    4: lambda s: Acked(s.text(), s.i64()),
    5: lambda s: Nacked(s.text(), s.i64(), s.text(), s.i64()),
    6: lambda s: Extended(s.text(), s.i64(), s.i64()),
    7: lambda s: LeaseExpired(s.text(), s.i64(), s.i64()),
    8: _read_dead_lettered,
    9: lambda s: Redriven(s.text(), s.texts(), s.i64()),
    10: lambda s: GroupReset(s.text(), s.text()),
    11: lambda s: Trimmed(s.text()),
}
