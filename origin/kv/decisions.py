"""The database's write decisions: what a commit, an expiry sweep or a queue operation adds to the log.

Each function returns a `Decision` for `KvDatabase.write`: run against the state at the moment
its batch is written, it returns the draft (empty when nothing changes) and its answer. Deciding
at that moment, not when the request arrived, is what makes a check or a fencing token judge the
state the event is appended to.

A message that reaches the dead-letter queue sets its `keys_if_undelivered` to its value in the
same event (Deno's behaviour), so the move and those sets are one atomic step.
"""

from __future__ import annotations

from collections.abc import Iterable

from plugin_streams.origin.kv.database import Decision, KvDatabase
from plugin_streams.origin.kv.events import EXPIRED, Change, Draft
from plugin_streams.origin.kv.queues import (
    DeadLettered,
    QueueRecord,
    ack,
    create_group,
    expire,
    extend,
    lease,
    nack,
    redrive,
    reset,
    term,
)
from plugin_streams.origin.kv.queues.records import Leased
from plugin_streams.shared.kv.commits import AtomicCommit, Enqueue

#: Keys an expiry sweep deletes per event, so one event stays small.
EXPIRY_BATCH = 1000


def commit(db: KvDatabase, atomic: AtomicCommit) -> Decision[bool]:
    """Deno's `atomic().commit()`: False (nothing logged) when a check fails."""

    def decide(now: int) -> tuple[Draft, bool]:
        draft = _commit_draft(db, atomic, now)
        return (Draft(), False) if draft is None else (draft, True)

    return decide


def _commit_draft(db: KvDatabase, atomic: AtomicCommit, now: int) -> Draft | None:
    if not db.index.check(atomic, now):
        return None
    changes = [
        Change(key, None if entry is None else entry.value, None if entry is None else entry.expires_at_ms)
        for key, entry in db.index.plan(atomic, now).items()
    ]
    return Draft(changes, [m for m in atomic.mutations if isinstance(m, Enqueue)])


def sweep_expired(db: KvDatabase) -> Decision[int]:
    """Delete the keys whose expiry has passed (watchers see each as a delete with cause `expired`)."""

    def decide(now: int) -> tuple[Draft, int]:
        keys = db.index.expired_keys(now, EXPIRY_BATCH)
        return Draft([Change(key, None, None, EXPIRED) for key in keys]), len(keys)

    return decide


# ---- queues ------------------------------------------------------------------------------------


def _queue_draft(records: Iterable[QueueRecord]) -> Draft:
    draft = Draft()
    for record in records:
        draft.queue.append(record)
        if isinstance(record, DeadLettered):
            draft.changes.extend(Change(key, record.value) for key in record.keys_if_undelivered)
    return draft


def expire_leases(db: KvDatabase) -> Decision[int]:
    """Lapsed leases of every group: failed attempts, dead-lettered after the last one."""

    def decide(now: int) -> tuple[Draft, int]:
        records = [record for group in db.queue.groups for record in expire(db.queue, group, now)]
        return _queue_draft(records), len(records)

    return decide


def has_expired_leases(db: KvDatabase, now: int) -> bool:
    return any(group.expired_tokens(now) for group in db.queue.groups.values())


def _retained_start(db: KvDatabase, replay_from: str | None) -> str | None:
    """`replay_from`, where "" (every message, the HTTP API's `-1`) means every message still
    retained: after a trim that is the first retained one, or new messages only when none is
    (the queue layer refuses "" then, since messages before the trim point are gone)."""
    queue = db.queue
    if replay_from != "" or queue.trimmed_through is None:
        return replay_from
    return queue.message_ids[0] if queue.message_ids else None


def create(db: KvDatabase, group: str, replay_from: str | None) -> Decision[None]:
    return lambda now: (_queue_draft([create_group(db.queue, group, _retained_start(db, replay_from))]), None)


def ensure_group(db: KvDatabase, group: str) -> Decision[None]:
    """Create `group` fed from the first retained message, unless it exists: Deno's one queue has
    one implicit consumer, and a worker naming a new group expects what was enqueued before it."""

    def decide(now: int) -> tuple[Draft, None]:
        if group in db.queue.groups:
            return Draft(), None
        return _queue_draft([create_group(db.queue, group, _retained_start(db, ""))]), None

    return decide


def lease_one(db: KvDatabase, group: str, worker: str, lease_ms: int) -> Decision[Leased | None]:
    """The next due message of `group` for `worker`, or None when none is due."""

    def decide(now: int) -> tuple[Draft, Leased | None]:
        record = lease(db.queue, group, worker, now, lease_ms)
        return (Draft(), None) if record is None else (_queue_draft([record]), record)

    return decide


def acknowledge(db: KvDatabase, group: str, token: int, atomic: AtomicCommit | None) -> Decision[bool]:
    """Ack, with an optional commit in the same event (the effect of processing: exactly once).

    A failed check of that commit leaves the message leased and answers False; a stale token is
    refused (StaleLease) before anything is checked."""

    def decide(now: int) -> tuple[Draft, bool]:
        record = ack(db.queue, group, token, now)
        draft = Draft() if atomic is None else _commit_draft(db, atomic, now)
        if draft is None:
            return Draft(), False
        draft.queue.append(record)
        return draft, True

    return decide


def negative_ack(db: KvDatabase, group: str, token: int, error: str, delay_ms: int | None) -> Decision[QueueRecord]:
    def decide(now: int) -> tuple[Draft, QueueRecord]:
        record = nack(db.queue, group, token, now, error, delay_ms)
        return _queue_draft([record]), record

    return decide


def extend_lease(db: KvDatabase, group: str, token: int, lease_ms: int) -> Decision[QueueRecord]:
    def decide(now: int) -> tuple[Draft, QueueRecord]:
        record = extend(db.queue, group, token, now, lease_ms)
        return _queue_draft([record]), record

    return decide


def terminate(db: KvDatabase, group: str, token: int, error: str) -> Decision[QueueRecord]:
    def decide(now: int) -> tuple[Draft, QueueRecord]:
        record = term(db.queue, group, token, now, error)
        return _queue_draft([record]), record

    return decide


def redrive_dead(db: KvDatabase, group: str, message_ids: tuple[str, ...] | None) -> Decision[int]:
    """Redrive `message_ids`, or every dead letter when None: then an empty DLQ redrives 0, not an
    error (a `queue redrive` run on a healthy queue succeeds); named ids must all be dead letters."""

    def decide(now: int) -> tuple[Draft, int]:
        found = db.queue.groups.get(group)
        if message_ids is None and found is not None and not found.dead:
            return Draft(), 0
        record = redrive(db.queue, group, message_ids, now)
        return _queue_draft([record]), len(record.message_ids)

    return decide


def reset_group(db: KvDatabase, group: str, from_id: str) -> Decision[None]:
    """Replay `group` from `from_id` ("" for every retained message)."""

    def decide(now: int) -> tuple[Draft, None]:
        start = _retained_start(db, from_id)
        if start is None:  # everything was trimmed: no message to replay, no lease to fence
            db.queue.group(group)
            return Draft(), None
        return _queue_draft([reset(db.queue, group, start)]), None

    return decide
