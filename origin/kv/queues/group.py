"""One consumer group's state: ready messages, leases, attempts and dead letters, with O(log n) moves.

Only `QueueState.apply` calls the mutating methods here, and only after checking that the record
fits (a live token, a ready message); this module keeps the indexes consistent:

- `ready_due` maps each ready message to its due time; `_ready_heap` orders (due, id) so the next
  deliverable message is the top. Entries whose message left the ready set, or became ready again
  at another time, are stale and dropped lazily when they reach the top.
- `leases` maps each live fencing token to its lease and `lease_of` each leased message to its
  token; `_expiry_heap` orders (expires, token) the same lazy way.
- `_pending_heap` orders the ids of messages still owed a delivery outcome (ready or leased), for
  the oldest-message age, again lazily.

After every mutation the tops of the three heaps are live entries, so reading `heap[0]` is exact.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from plugin_streams.origin.kv.queues.records import DeadReason


@dataclass(frozen=True, slots=True)
class Lease:
    message_id: str
    worker: str
    attempt: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A group's DLQ entry; `message_id` is the message's original offset in the queue stream."""

    message_id: str
    attempts: int
    reason: DeadReason
    last_error: str
    dead_at_ms: int


class GroupState:
    def __init__(self) -> None:
        self.ready_due: dict[str, int] = {}
        self.leases: dict[int, Lease] = {}
        self.lease_of: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self.dead: dict[str, DeadLetter] = {}
        self.redeliveries = 0
        self.acked = 0
        self._ready_heap: list[tuple[int, str]] = []
        self._expiry_heap: list[tuple[int, int]] = []
        self._pending_heap: list[str] = []
        self._dead_sorted: list[str] | None = None  # dead ids in order, rebuilt after a change

    # ----- reads -----

    def dead_page(self, after: str, limit: int) -> list[DeadLetter]:
        """Up to `limit` dead letters with ids after `after`, in id order: O(log n) per page once the
        order is known (it is rebuilt once after the dead letters change, not per request)."""
        if self._dead_sorted is None:
            self._dead_sorted = sorted(self.dead)
        start = bisect_right(self._dead_sorted, after)
        return [self.dead[message_id] for message_id in self._dead_sorted[start : start + limit]]

    def next_ready(self) -> tuple[int, str] | None:
        """(due, id) of the ready message due first (ties by id), without scanning."""
        return self._ready_heap[0] if self._ready_heap else None

    def expired_tokens(self, now_ms: int) -> list[int]:
        """Tokens of the leases whose deadline is at or before `now_ms`, in deadline order.

        Walks only the part of the heap at or below `now_ms` (a heap's children are never smaller
        than their parent), so the cost follows the number of expired entries, not of leases.
        """
        found: dict[int, int] = {}
        heap, stack = self._expiry_heap, [0]
        while stack:
            index = stack.pop()
            if index >= len(heap) or heap[index][0] > now_ms:
                continue
            expires_ms, token = heap[index]
            lease = self.leases.get(token)
            if lease is not None and lease.expires_ms == expires_ms:
                found[token] = expires_ms
            stack.extend((2 * index + 1, 2 * index + 2))
        return sorted(found, key=lambda token: (found[token], token))

    def oldest_pending(self) -> str | None:
        return self._pending_heap[0] if self._pending_heap else None

    def ready_entries(self) -> Iterator[tuple[str, int]]:
        return iter(self.ready_due.items())

    # ----- moves (called by QueueState.apply only) -----

    def make_ready(self, message_id: str, due_ms: int) -> None:
        """A message that had no outcome pending (new, redriven or replayed) becomes deliverable."""
        if message_id not in self.ready_due and message_id not in self.lease_of:
            heapq.heappush(self._pending_heap, message_id)
        self._set_ready(message_id, due_ms)

    def take_lease(self, token: int, lease: Lease) -> None:
        del self.ready_due[lease.message_id]
        self.leases[token] = lease
        self.lease_of[lease.message_id] = token
        self.attempts[lease.message_id] = lease.attempt
        if lease.attempt > 1:
            self.redeliveries += 1
        heapq.heappush(self._expiry_heap, (lease.expires_ms, token))
        self._tidy()

    def extend_lease(self, token: int, expires_ms: int) -> None:
        lease = self.leases[token]
        self.leases[token] = Lease(lease.message_id, lease.worker, lease.attempt, expires_ms)
        heapq.heappush(self._expiry_heap, (expires_ms, token))
        self._tidy()

    def retry_later(self, token: int, error: str, retry_at_ms: int) -> None:
        """A failed attempt with retries left: the message waits in the ready set until `retry_at_ms`."""
        lease = self.leases.pop(token)
        del self.lease_of[lease.message_id]
        self.last_error[lease.message_id] = error
        self._set_ready(lease.message_id, retry_at_ms)

    def finish(self, token: int) -> str:
        """The message's delivery succeeded; returns its id."""
        message_id = self.leases.pop(token).message_id
        self._forget(message_id)
        self.acked += 1
        self._tidy()
        return message_id

    def bury(self, token: int, entry: DeadLetter) -> None:
        self.leases.pop(token)
        self._forget(entry.message_id)
        self.dead[entry.message_id] = entry
        self._dead_sorted = None
        self._tidy()

    def revive(self, message_id: str, ready_at_ms: int) -> None:
        del self.dead[message_id]
        self._dead_sorted = None
        self.make_ready(message_id, ready_at_ms)

    def clear_window(self, keep_dead_before: str) -> None:
        """Forget every ready message and lease (fencing their tokens); keep dead letters before the id."""
        self.ready_due.clear()
        self.leases.clear()
        self.lease_of.clear()
        self.attempts.clear()
        self.last_error.clear()
        self.dead = {key: entry for key, entry in self.dead.items() if key < keep_dead_before}
        self._dead_sorted = None
        self._ready_heap.clear()
        self._expiry_heap.clear()
        self._pending_heap.clear()

    def restore(self, leases: dict[int, Lease], attempts: dict[str, int], last_error: dict[str, str]) -> None:
        """Rebuild the lease indexes from a snapshot (ready messages come through `make_ready` first)."""
        for token, lease in leases.items():
            self.leases[token] = lease
            self.lease_of[lease.message_id] = token
            self._expiry_heap.append((lease.expires_ms, token))
            self._pending_heap.append(lease.message_id)
        heapq.heapify(self._expiry_heap)
        heapq.heapify(self._pending_heap)
        self.attempts.update(attempts)
        self.last_error.update(last_error)

    # ----- internals -----

    def _set_ready(self, message_id: str, due_ms: int) -> None:
        self.ready_due[message_id] = due_ms
        heapq.heappush(self._ready_heap, (due_ms, message_id))
        self._tidy()

    def _forget(self, message_id: str) -> None:
        del self.lease_of[message_id]
        self.attempts.pop(message_id, None)
        self.last_error.pop(message_id, None)

    def _tidy(self) -> None:
        """Drop stale heap tops, so each heap's top is a live entry."""
        ready, expiry, pending = self._ready_heap, self._expiry_heap, self._pending_heap
        while ready and self.ready_due.get(ready[0][1]) != ready[0][0]:
            heapq.heappop(ready)
        while expiry and not self._lease_expires_at(expiry[0][1], expiry[0][0]):
            heapq.heappop(expiry)
        while pending and pending[0] not in self.ready_due and pending[0] not in self.lease_of:
            heapq.heappop(pending)

    def _lease_expires_at(self, token: int, expires_ms: int) -> bool:
        lease = self.leases.get(token)
        return lease is not None and lease.expires_ms == expires_ms
