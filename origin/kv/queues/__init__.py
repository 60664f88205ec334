"""Durable queues with consumer groups and a dead-letter queue, as a deterministic state machine over a log.

Design. Every queue operation is a record in the queue's stream (the log). An operation is a
*decision* (`decisions`): it reads the current `QueueState`, validates its arguments, and returns
the record(s) stating what happens, with every value chosen (fencing token, attempt number,
deadlines, retry time). The state changes only through `QueueState.apply(record, position)`, which
needs no clock, so replaying the log, from the start or from a `snapshot` and the records after
its position, rebuilds exactly the state the live process had. A SIGKILL at any point loses at
most decisions whose records were not yet durable, and those were never acknowledged.

Per consumer group (groups are independent: each sees every message it was fed) the state holds
the ready messages ordered by due time then id (a heap: leasing the next due message never scans),
the live leases by fencing token (a heap by deadline for the expiry sweep), attempt counts, last
errors and the dead letters. Every operation is O(log n), except creating a group with a replay
and a reset, which are O(messages replayed).

The three faults of the host platform's queue, and how this design removes them:

1. *Unfenced acks* (a worker whose lease expired acks a message another worker now holds): each
   lease carries a fencing token from a queue-wide counter that only rises. `ack`, `nack`, `extend`
   and `term` need the token of the message's live, unexpired lease; an expired, answered or reset
   token is refused with `StaleLease` (409, code FENCED) and no record is made. `apply` checks
   again, so even a stale record that slipped into the log changes nothing.
2. *Lease expiry never dead-letters* (a message that kills its worker loops forever): attempts are
   counted when a message is handed out, and the expiry sweep treats a lapsed lease as a failed
   attempt: after `max_attempts` (Deno's: one plus the backoff schedule's length) the message goes
   to the dead-letter queue, as after a final `nack`.
3. *A non-atomic move to the DLQ*: the move is one record, `DeadLettered`, that removes the
   message from the group and is itself the DLQ entry (original offset = message id, attempts,
   reason, last error, value). It also carries the `keys_if_undelivered`, so the KV layer sets them
   to the value in the same commit, as Deno does.

What the HTTP/worker layer must do (a later step; nothing here does I/O):

- Serialise the decisions of a queue (one writer), and for each: append the record(s) to the
  queue's stream, wait until durable, `apply` them, then answer. Never answer before applying.
- Run `expire(state, group, now)` periodically (at least as often as the shortest lease) and
  before `lease`, appending its records like any other decision.
- Give `enqueue` a message whose id is the offset of the record that enqueued it (with an index
  when one commit enqueues several), and apply enqueues also when they arrive through a KV commit.
- Snapshot now and then (`encode_snapshot`), and at start-up `load_snapshot` then apply the
  records after `state.position`. Trim now and then (`trim`, bounded by the stream's retention)
  so the state holds only messages some group still needs.
- For exactly-once *processing*, commit the effect and the ack together (one KV atomic holding the
  effect and the `Acked` record), or key the effect by the message id (its stream offset).
"""

from __future__ import annotations

from plugin_streams.origin.kv.queues.codec import decode_record, encode_record
from plugin_streams.origin.kv.queues.decisions import (
    ack,
    create_group,
    enqueue,
    expire,
    extend,
    lease,
    nack,
    redrive,
    reset,
    term,
    trim,
)
from plugin_streams.origin.kv.queues.errors import (
    GroupExists,
    QueueInputError,
    ReplayTrimmed,
    StaleLease,
    UnknownGroup,
)
from plugin_streams.origin.kv.queues.message import DEFAULT_BACKOFF_SCHEDULE_MS, QueuedMessage
from plugin_streams.origin.kv.queues.records import DeadLettered, DeadReason, QueueRecord
from plugin_streams.origin.kv.queues.snapshot import encode_snapshot, load_snapshot
from plugin_streams.origin.kv.queues.state import Applied, QueueState
from plugin_streams.origin.kv.queues.stats import GroupStats, group_stats
from plugin_streams.origin.kv.queues.wire import CorruptEncoding

__all__ = [
    "DEFAULT_BACKOFF_SCHEDULE_MS",
    "Applied",
    "CorruptEncoding",
    "DeadLettered",
    "DeadReason",
    "GroupExists",
    "GroupStats",
    "QueueInputError",
    "QueueRecord",
    "QueueState",
    "QueuedMessage",
    "ReplayTrimmed",
    "StaleLease",
    "UnknownGroup",
    "ack",
    "create_group",
    "decode_record",
    "encode_record",
    "encode_snapshot",
    "enqueue",
    "expire",
    "extend",
    "group_stats",
    "lease",
    "load_snapshot",
    "nack",
    "redrive",
    "reset",
    "term",
    "trim",
]
