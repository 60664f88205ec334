"""The queue's records: every change of a queue's state is one of these, appended to its stream first.

A record states a decision already taken (see `decisions`), with every value the decision chose
(token, attempt, deadlines), so applying it needs no clock and no randomness: replaying the log
rebuilds exactly the state the live process had. `codec` gives each a compact, versioned encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from plugin_streams.origin.kv.queues.message import QueuedMessage


class DeadReason(StrEnum):
    TERM = "term"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


@dataclass(frozen=True, slots=True)
class Enqueued:
    message: QueuedMessage


@dataclass(frozen=True, slots=True)
class GroupCreated:
    """A consumer group; it receives the messages with id >= `replay_from`, or only new ones when None."""

    group: str
    replay_from: str | None


@dataclass(frozen=True, slots=True)
class Leased:
    """A message handed to a worker: `attempt` counts hand-outs, `token` fences every later answer."""

    group: str
    message_id: str
    worker: str
    token: int
    attempt: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Acked:
    group: str
    token: int


@dataclass(frozen=True, slots=True)
class Nacked:
    """A failed attempt with retries left: the message is ready again at `retry_at_ms`."""

    group: str
    token: int
    error: str
    retry_at_ms: int


@dataclass(frozen=True, slots=True)
class Extended:
    group: str
    token: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class LeaseExpired:
    """The expiry sweep found the lease past its deadline with retries left: a failed attempt."""

    group: str
    token: int
    retry_at_ms: int


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The one record that removes a leased message from the group and adds its dead-letter entry.

    It is the DLQ entry itself: the original offset (`message_id`), the attempts handed out, the
    reason and last error, and the value with the `keys_if_undelivered` the KV layer sets to it in
    the same commit (Deno's dead-letter behaviour).
    """

    group: str
    token: int
    message_id: str
    attempts: int
    reason: DeadReason
    last_error: str
    dead_at_ms: int
    value: bytes
    keys_if_undelivered: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Redriven:
    """Dead letters back to ready at `ready_at_ms`, each with a fresh attempt budget."""

    group: str
    message_ids: tuple[str, ...]
    ready_at_ms: int


@dataclass(frozen=True, slots=True)
class GroupReset:
    """Replay: the group forgets its window and redelivers every message with id >= `from_id`.

    Outstanding leases are dropped, so their tokens are fenced; dead letters at or after `from_id`
    leave the DLQ, since those messages are being delivered again.
    """

    group: str
    from_id: str


@dataclass(frozen=True, slots=True)
class Trimmed:
    """Messages with id <= `through_id` leave the state: no group needs them (see `QueueState.trimmable_through`)."""

    through_id: str


QueueRecord = (
    Enqueued
    | GroupCreated
    | Leased
    | Acked
    | Nacked
    | Extended
    | LeaseExpired
    | DeadLettered
    | Redriven
    | GroupReset
    | Trimmed
)
