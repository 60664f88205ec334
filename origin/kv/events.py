"""Change events: one JSON message per commit in the database's change stream, which is its log.

    {"versionstamp": "<20 hex>", "offset": "<offset after this commit>", "at": <commit time, ms>,
     "changes": [{"key": K, "op": "set", "value": V, "expireAt": ms | null},
                 {"key": K, "op": "delete"}, {"key": K, "op": "delete", "cause": "expired"}],
     "enqueued": [{"id": ID, "value": V, "delay": ms, "backoffSchedule": [ms] | null,
                   "keysIfUndelivered": [K]}],
     "queue": ["<base64url of a queue record>", ...]}

`changes` are the commit's effects, not its request: a sum/min/max is logged as the `set` of its
result and an expiry as its `expireAt`, so replaying the log never recomputes anything against a
clock or a previous value, and a watcher sees what a read would have seen. `queue` carries the
queue's own records (leases, acks, dead letters...), opaque to watchers.

The message embeds its own offset (and versionstamp, the same point in Deno's 10 bytes) because a
JSON read returns messages without offsets, and a watcher resuming after a commit needs exactly
that point. Both are fixed-width, so the message's length, and with it the offset after it, is
known before its text is final: `render` lays the message out once with the real values.
A JSON stream stores each message as its compact JSON text plus a comma (shared.jsonmode), so the
offset after a message is the offset before it plus `len(text) + 1`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from plugin_streams.origin.kv.queues import QueuedMessage, QueueRecord, decode_record, encode_record
from plugin_streams.shared import jsonmode
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.kv.commits import Enqueue
from plugin_streams.shared.kv.keys import bytes_from_base64url, decode_key, encode_key, key_from_wire, key_to_wire
from plugin_streams.shared.kv.values import Json, decode_value, encode_value, value_from_wire, value_to_wire
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset, parse_offset

#: A message's separator in a JSON stream's stored form (shared.jsonmode).
_SEPARATOR_BYTES: Final = 1
EXPIRED: Final = "expired"


@dataclass(frozen=True, slots=True)
class Change:
    """The effect of a commit on one key: its new stored value (None: deleted) and expiry."""

    key: bytes  # encoded
    value: bytes | None  # stored form; None for a delete
    expires_at_ms: int | None = None
    cause: str | None = None  # "expired" for the sweeper's deletes


@dataclass(slots=True)
class Draft:
    """What one decision adds to the log; empty when it changes nothing (a lease finding no message)."""

    changes: list[Change] = field(default_factory=list)
    enqueues: list[Enqueue] = field(default_factory=list)  # ids come from the commit's offset (`message_id`)
    queue: list[QueueRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes or self.enqueues or self.queue)


@dataclass(frozen=True, slots=True)
class Event:
    """A commit as the log holds it: its draft, its time and the offset just after it."""

    offset: Offset
    at_ms: int
    draft: Draft

    @property
    def versionstamp(self) -> Versionstamp:
        return Versionstamp.from_offset(self.offset)

    def messages(self) -> list[QueuedMessage]:
        """The enqueued messages, with their ids."""
        return [
            QueuedMessage(
                message_id(self.offset, index),
                enqueue.value,
                self.at_ms,
                enqueue.delay_ms,
                enqueue.backoff_schedule,
                enqueue.keys_if_undelivered,
            )
            for index, enqueue in enumerate(self.draft.enqueues)
        ]


def message_id(commit: Offset, index: int) -> str:
    """A queue message's id: its commit's offset and its index there; string order is enqueue order."""
    return f"{commit}.{index:04d}"


def render(before: Offset, at_ms: int, draft: Draft) -> tuple[Event, bytes]:
    """The event for `draft` appended at `before`, and its message text (compact JSON)."""
    body = _body(at_ms, draft, before)
    length = len(_head(Versionstamp(0), before)) + len(body)
    after = Offset(before.generation, before.position + length + _SEPARATOR_BYTES)
    if draft.enqueues:  # message ids name the offset after the event: fixed width, so same length
        body = _body(at_ms, draft, after)
    text = _head(Versionstamp.from_offset(after), after) + body
    assert len(text) == length, "change event fields must be fixed width"
    return Event(after, at_ms, draft), text


def _head(versionstamp: Versionstamp, offset: Offset) -> bytes:
    return f'{{"versionstamp":"{versionstamp}","offset":"{offset}",'.encode()


def _body(at_ms: int, draft: Draft, offset: Offset) -> bytes:
    """The rest of the message after its head, starting with `"at"` (the leading `{` is the head's)."""
    whole: dict[str, Json] = {
        "at": at_ms,
        "changes": [_change_to_wire(change) for change in draft.changes],
        "enqueued": [_enqueue_to_wire(enqueue, message_id(offset, i)) for i, enqueue in enumerate(draft.enqueues)],
        "queue": [base64.urlsafe_b64encode(encode_record(record)).decode("ascii") for record in draft.queue],
    }
    return jsonmode.compact(whole)[1:]


def _change_to_wire(change: Change) -> Json:
    wire: dict[str, Json] = {"key": key_to_wire(decode_key(change.key))}  # type: ignore[dict-item]
    if change.value is None:
        wire["op"] = "delete"
        if change.cause is not None:
            wire["cause"] = change.cause
        return wire
    wire["op"] = "set"
    wire["value"] = value_to_wire(decode_value(change.value))
    wire["expireAt"] = change.expires_at_ms
    return wire


def _enqueue_to_wire(enqueue: Enqueue, id_: str) -> Json:
    schedule = enqueue.backoff_schedule
    return {
        "id": id_,
        "value": value_to_wire(decode_value(enqueue.value)),
        "delay": enqueue.delay_ms,
        "backoffSchedule": None if schedule is None else list(schedule),
        "keysIfUndelivered": [key_to_wire(decode_key(key)) for key in enqueue.keys_if_undelivered],  # type: ignore[misc]
    }


# ---- reading the log back ----------------------------------------------------------------------


class CorruptEvent(ValueError):
    """A message of a change stream that this code did not write (the stream is refused, not guessed at)."""


def parse(message: Json) -> Event:
    """An event from one parsed message of a change stream."""
    if not isinstance(message, dict):
        raise CorruptEvent("a change event is a JSON object")
    try:
        offset = parse_offset(str(message["offset"]))
        at_ms = message["at"]
        assert isinstance(at_ms, int)
        draft = Draft(
            [_change_from_wire(wire) for wire in _items(message, "changes")],
            [_enqueue_from_wire(wire) for wire in _items(message, "enqueued")],
            [decode_record(_queue_bytes(wire)) for wire in _items(message, "queue")],
        )
    except (KeyError, TypeError, ValueError, AssertionError, BadRequest) as exc:
        raise CorruptEvent(f"malformed change event: {exc}") from None
    return Event(offset, at_ms, draft)


def parse_messages(body: bytes) -> list[Event]:
    """The events of a JSON read of a change stream (`[...]`)."""
    messages = json.loads(body)
    if not isinstance(messages, list):
        raise CorruptEvent("a change stream read is a JSON array")
    return [parse(message) for message in messages]


def _items(message: dict[str, Json], name: str) -> Sequence[Json]:
    items = message[name]
    if not isinstance(items, list):
        raise TypeError(f"{name} is not a list")
    return items


def _change_from_wire(wire: Json) -> Change:
    assert isinstance(wire, dict)
    key = encode_key(key_from_wire(wire["key"]))
    if wire["op"] == "delete":
        cause = wire.get("cause")
        return Change(key, None, None, cause if isinstance(cause, str) else None)
    expires = wire.get("expireAt")
    assert expires is None or isinstance(expires, int)
    return Change(key, encode_value(value_from_wire(wire["value"])), expires)


def _enqueue_from_wire(wire: Json) -> Enqueue:
    assert isinstance(wire, dict)
    delay = wire["delay"]
    schedule = wire["backoffSchedule"]
    keys = wire["keysIfUndelivered"]
    assert isinstance(delay, int) and isinstance(keys, list)
    assert schedule is None or (isinstance(schedule, list) and all(isinstance(ms, int) for ms in schedule))
    return Enqueue(
        encode_value(value_from_wire(wire["value"])),
        delay,
        tuple(encode_key(key_from_wire(key)) for key in keys),
        None if schedule is None else tuple(ms for ms in schedule if isinstance(ms, int)),
    )


def _queue_bytes(wire: Json) -> bytes:
    if not isinstance(wire, str):
        raise TypeError("a queue record is a base64url string")
    return bytes_from_base64url(wire, what="a queue record")
