"""A queue's materialised state, changed only by `apply(record, position)`: replaying the log is living it.

`apply` re-checks that a record still fits (its token is live, its message ready, its group known)
and otherwise ignores it, reporting `Applied.IGNORED`. Records come from decisions taken against
this same state, so in a single-writer process every record fits; the check makes a second record
decided against an older state (two requests racing the same lease) a deterministic no-op both live
and on replay, so a stale token can never change anything, even at this level.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from enum import Enum
from typing import Final

from plugin_streams.origin.kv.queues.errors import UnknownGroup
from plugin_streams.origin.kv.queues.group import DeadLetter, GroupState, Lease
from plugin_streams.origin.kv.queues.message import QueuedMessage
from plugin_streams.origin.kv.queues.records import (
    Acked,
    DeadLettered,
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

LEASE_EXPIRED_ERROR: Final = "lease expired"


class Applied(Enum):
    APPLIED = "applied"
    IGNORED = "ignored"


class QueueState:
    """Messages (in id order), consumer groups, the next fencing token, and the last applied position.

    Messages stay after every group is done with them, so a group can be reset to any offset,
    until a `Trimmed` record drops those no group needs any more; replays before that point are
    then refused (`ReplayTrimmed`, 410), as reads before a stream's retention horizon are.
    """

    def __init__(self) -> None:
        self.messages: dict[str, QueuedMessage] = {}
        self.message_ids: list[str] = []
        self.groups: dict[str, GroupState] = {}
        self.next_token = 1
        self.position: str | None = None
        self.last_message_id: str | None = None  # kept across trims, so a replayed enqueue stays a no-op
        self.trimmed_through: str | None = None  # messages up to this id were dropped; no replay reaches them

    def trimmable_through(self) -> str | None:
        """The highest id such that no group needs it or any message before it (None: nothing to trim).

        A group needs a message still owed an outcome (ready or leased) and one in its dead-letter
        queue (a redrive delivers it again). O(groups + dead letters): trimming is maintenance.
        """
        needed = [group.oldest_pending() for group in self.groups.values()]
        needed += [min(group.dead) for group in self.groups.values() if group.dead]
        lowest = min((message_id for message_id in needed if message_id is not None), default=None)
        end = len(self.message_ids) if lowest is None else bisect_left(self.message_ids, lowest)
        return self.message_ids[end - 1] if end else None

    def group(self, name: str) -> GroupState:
        found = self.groups.get(name)
        if found is None:
            raise UnknownGroup(f"consumer group {name!r} does not exist")
        return found

    def ids_from(self, first_id: str) -> list[str]:
        """Ids at or after `first_id`, found by bisection."""
        return self.message_ids[bisect_left(self.message_ids, first_id) :]

    def apply(self, record: QueueRecord, position: str) -> Applied:
        """The only way the state changes. `position` is the record's place in the queue's stream."""
        applied = _APPLIERS[type(record)](self, record)
        self.position = position
        return Applied.APPLIED if applied else Applied.IGNORED

    # ----- one method per record type; each returns whether the record fitted -----

    def _enqueued(self, record: Enqueued) -> bool:
        message = record.message
        last = self.last_message_id
        if last is not None and message.id <= last:
            return False  # a replayed or out-of-order enqueue: the message is already here
        self.messages[message.id] = message
        self.message_ids.append(message.id)
        self.last_message_id = message.id
        for group in self.groups.values():
            group.make_ready(message.id, message.due_ms)
        return True

    def _group_created(self, record: GroupCreated) -> bool:
        if record.group in self.groups:
            return False
        group = self.groups[record.group] = GroupState()
        if record.replay_from is not None:
            self._replay_into(group, record.replay_from)
        return True

    def _leased(self, record: Leased) -> bool:
        group = self.groups.get(record.group)
        if group is None or record.message_id not in group.ready_due or record.token < self.next_token:
            return False
        if record.attempt != group.attempts.get(record.message_id, 0) + 1:
            return False
        group.take_lease(record.token, Lease(record.message_id, record.worker, record.attempt, record.expires_ms))
        self.next_token = record.token + 1
        return True

    def _acked(self, record: Acked) -> bool:
        group = self._holding(record.group, record.token)
        if group is None:
            return False
        group.finish(record.token)
        return True

    def _nacked(self, record: Nacked) -> bool:
        group = self._holding(record.group, record.token)
        if group is None:
            return False
        group.retry_later(record.token, record.error, record.retry_at_ms)
        return True

    def _extended(self, record: Extended) -> bool:
        group = self._holding(record.group, record.token)
        if group is None:
            return False
        group.extend_lease(record.token, record.expires_ms)
        return True

    def _lease_expired(self, record: LeaseExpired) -> bool:
        group = self._holding(record.group, record.token)
        if group is None:
            return False
        group.retry_later(record.token, LEASE_EXPIRED_ERROR, record.retry_at_ms)
        return True

    def _dead_lettered(self, record: DeadLettered) -> bool:
        group = self._holding(record.group, record.token)
        if group is None or group.leases[record.token].message_id != record.message_id:
            return False
        entry = DeadLetter(record.message_id, record.attempts, record.reason, record.last_error, record.dead_at_ms)
        group.bury(record.token, entry)
        return True

    def _redriven(self, record: Redriven) -> bool:
        group = self.groups.get(record.group)
        if group is None:
            return False
        revived = [message_id for message_id in record.message_ids if message_id in group.dead]
        for message_id in revived:
            group.revive(message_id, record.ready_at_ms)
        return bool(revived)

    def _group_reset(self, record: GroupReset) -> bool:
        group = self.groups.get(record.group)
        if group is None:
            return False
        group.clear_window(keep_dead_before=record.from_id)
        self._replay_into(group, record.from_id)
        return True

    def _trimmed(self, record: Trimmed) -> bool:
        limit = self.trimmable_through()
        if limit is None or record.through_id > limit:
            return False
        end = bisect_right(self.message_ids, record.through_id)
        for message_id in self.message_ids[:end]:
            del self.messages[message_id]
        del self.message_ids[:end]
        self.trimmed_through = record.through_id
        return True

    def _holding(self, group_name: str, token: int) -> GroupState | None:
        """The group, if `token` is one of its live leases."""
        group = self.groups.get(group_name)
        return group if group is not None and token in group.leases else None

    def _replay_into(self, group: GroupState, first_id: str) -> None:
        for message_id in self.ids_from(first_id):
            group.make_ready(message_id, self.messages[message_id].due_ms)


_APPLIERS: Final[dict[type, Callable[[QueueState, QueueRecord], bool]]] = {
    Enqueued: QueueState._enqueued,  # type: ignore[dict-item]
    GroupCreated: QueueState._group_created,  # type: ignore[dict-item]
    Leased: QueueState._leased,  # type: ignore[dict-item]
    Acked: QueueState._acked,  # type: ignore[dict-item]
    Nacked: QueueState._nacked,  # type: ignore[dict-item]
    Extended: QueueState._extended,  # type: ignore[dict-item]
    LeaseExpired: QueueState._lease_expired,  # type: ignore[dict-item]
    DeadLettered: QueueState._dead_lettered,  # type: ignore[dict-item]
    Redriven: QueueState._redriven,  # type: ignore[dict-item]
    GroupReset: QueueState._group_reset,  # type: ignore[dict-item]
    Trimmed: QueueState._trimmed,  # type: ignore[dict-item]
}
