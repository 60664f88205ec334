"""Queue operations as decisions: each reads the state, validates, and returns the record(s) to append.

Nothing here changes the state. The caller appends the returned records to the queue's stream
and, once they are durable, applies them (`QueueState.apply`) before taking the next decision on
that queue; an answer is given to the client only after that. Decisions of one queue are
serialised (one writer), so each is taken against the state its records will meet.

Fencing: a lease's token is the next value of the queue's token counter, so tokens rise
monotonically and are never reused. `ack`, `nack`, `extend` and `term` demand the token of the
message's current, unexpired lease; anything else is `StaleLease` (409), and no record is made.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

from plugin_streams.origin.kv.queues.errors import GroupExists, QueueInputError, ReplayTrimmed, StaleLease
from plugin_streams.origin.kv.queues.group import Lease
from plugin_streams.origin.kv.queues.message import MAX_DELAY_MS, QueuedMessage
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
    Redriven,
    Trimmed,
)
from plugin_streams.origin.kv.queues.state import LEASE_EXPIRED_ERROR, QueueState

MAX_NAME_CHARS: Final = 256
MAX_ERROR_CHARS: Final = 4_096
MIN_LEASE_MS: Final = 1_000
MAX_LEASE_MS: Final = 600_000  # the subscription spec's lease range (§7.3): 1 s to 10 min
MAX_REDRIVE: Final = 1_000
#: Each group holds its own place for every message it is fed: a client naming groups at will must
#: not multiply the queue's memory without bound.
MAX_GROUPS: Final = 64


def enqueue(state: QueueState, message: QueuedMessage) -> Enqueued:
    last = state.last_message_id
    if last is not None and message.id <= last:
        raise QueueInputError(f"message id {message.id!r} does not sort after the last one, {last!r}")
    return Enqueued(message)


def create_group(state: QueueState, group: str, replay_from: str | None) -> GroupCreated:
    """A group fed from `replay_from` (an id; "" for the beginning), or from new messages only when None."""
    _check_name("group", group)
    if group in state.groups:
        raise GroupExists(f"consumer group {group!r} already exists")
    if len(state.groups) >= MAX_GROUPS:
        raise QueueInputError(f"a queue has at most {MAX_GROUPS} consumer groups")
    if replay_from is not None:
        _check_replayable(state, replay_from)
    return GroupCreated(group, replay_from)


def lease(state: QueueState, group: str, worker: str, now_ms: int, lease_ms: int) -> Leased | None:
    """Hand the message due first to `worker`, or None when nothing is due. Counts the attempt now."""
    _check_name("worker", worker)
    _check_lease_ms(lease_ms)
    found = state.group(group)
    head = found.next_ready()
    if head is None or head[0] > now_ms:
        return None
    message_id = head[1]
    attempt = found.attempts.get(message_id, 0) + 1
    return Leased(group, message_id, worker, state.next_token, attempt, now_ms + lease_ms)


def ack(state: QueueState, group: str, token: int, now_ms: int) -> Acked:
    _live_lease(state, group, token, now_ms)
    return Acked(group, token)


def nack(
    state: QueueState, group: str, token: int, now_ms: int, error: str, delay_ms: int | None = None
) -> Nacked | DeadLettered:
    """A failed attempt: retry after `delay_ms` or the message's backoff, or dead-letter on the last attempt."""
    _check_error(error)
    if delay_ms is not None and not 0 <= delay_ms <= MAX_DELAY_MS:
        raise QueueInputError(f"a nack delay must be between 0 and {MAX_DELAY_MS} ms")
    held = _live_lease(state, group, token, now_ms)
    message = state.messages[held.message_id]
    if held.attempt >= message.max_attempts:
        return _dead(state, group, token, held, DeadReason.ATTEMPTS_EXHAUSTED, error, now_ms)
    wait_ms = message.retry_delay_ms(held.attempt) if delay_ms is None else delay_ms
    return Nacked(group, token, error, now_ms + wait_ms)


def extend(state: QueueState, group: str, token: int, now_ms: int, lease_ms: int) -> Extended:
    _check_lease_ms(lease_ms)
    _live_lease(state, group, token, now_ms)
    return Extended(group, token, now_ms + lease_ms)


def term(state: QueueState, group: str, token: int, now_ms: int, error: str) -> DeadLettered:
    """Give up on the message at once: straight to the dead-letter queue, whatever attempts remain."""
    _check_error(error)
    held = _live_lease(state, group, token, now_ms)
    return _dead(state, group, token, held, DeadReason.TERM, error, now_ms)


def expire(state: QueueState, group: str, now_ms: int) -> list[LeaseExpired | DeadLettered]:
    """The expiry sweep: each lease past its deadline is a failed attempt, dead-lettered if it was the last.

    The worker layer runs it periodically and before leasing, so a message whose worker died is
    retried, and a message that kills every worker that takes it is dead-lettered after its
    attempts like any other failure.
    """
    found = state.group(group)
    records: list[LeaseExpired | DeadLettered] = []
    for token in found.expired_tokens(now_ms):
        held = found.leases[token]
        message = state.messages[held.message_id]
        if held.attempt >= message.max_attempts:
            records.append(_dead(state, group, token, held, DeadReason.ATTEMPTS_EXHAUSTED, LEASE_EXPIRED_ERROR, now_ms))
        else:
            records.append(LeaseExpired(group, token, now_ms + message.retry_delay_ms(held.attempt)))
    return records


def redrive(state: QueueState, group: str, message_ids: tuple[str, ...] | None, now_ms: int) -> Redriven:
    """Move dead letters (all of them when `message_ids` is None, at most MAX_REDRIVE) back to ready."""
    found = state.group(group)
    if message_ids is None:
        message_ids = tuple(found.dead)[:MAX_REDRIVE]
    if not message_ids:
        raise QueueInputError(f"nothing to redrive: the dead-letter queue of {group!r} is empty or no id was given")
    if len(message_ids) > MAX_REDRIVE:
        raise QueueInputError(f"at most {MAX_REDRIVE} messages per redrive")
    missing = [message_id for message_id in message_ids if message_id not in found.dead]
    if missing:
        raise QueueInputError(f"not in the dead-letter queue of {group!r}: {', '.join(missing[:10])}")
    return Redriven(group, tuple(dict.fromkeys(message_ids)), now_ms)


def reset(state: QueueState, group: str, from_id: str) -> GroupReset:
    """Replay from `from_id` ("" for the beginning): every outstanding lease of the group is fenced."""
    state.group(group)
    _check_replayable(state, from_id)
    return GroupReset(group, from_id)


def trim(state: QueueState, up_to: str | None = None) -> Trimmed | None:
    """Drop the messages no group needs any more (at most through `up_to`), or None when there is none."""
    through = state.trimmable_through()
    if through is not None and up_to is not None and up_to < through:
        index = bisect_right(state.message_ids, up_to)
        through = state.message_ids[index - 1] if index else None
    return None if through is None else Trimmed(through)


def _dead(
    state: QueueState, group: str, token: int, held: Lease, reason: DeadReason, error: str, now_ms: int
) -> DeadLettered:
    message = state.messages[held.message_id]
    return DeadLettered(
        group, token, message.id, held.attempt, reason, error, now_ms, message.value, message.keys_if_undelivered
    )


def _live_lease(state: QueueState, group: str, token: int, now_ms: int) -> Lease:
    held = state.group(group).leases.get(token)
    if held is None:
        raise StaleLease(f"token {token} holds no message of group {group!r}: it was answered, expired or reset")
    if now_ms >= held.expires_ms:
        raise StaleLease(f"token {token}'s lease on {held.message_id} expired at {held.expires_ms}")
    return held


def _check_replayable(state: QueueState, from_id: str) -> None:
    if state.trimmed_through is not None and from_id <= state.trimmed_through:
        raise ReplayTrimmed(
            f"messages through {state.trimmed_through!r} were trimmed: replay from after it, or read the stream"
        )


def _check_name(what: str, name: str) -> None:
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise QueueInputError(f"a {what} name must have 1 to {MAX_NAME_CHARS} characters")


def _check_lease_ms(lease_ms: int) -> None:
    if not MIN_LEASE_MS <= lease_ms <= MAX_LEASE_MS:
        raise QueueInputError(f"a lease must last between {MIN_LEASE_MS} and {MAX_LEASE_MS} ms")


def _check_error(error: str) -> None:
    if len(error) > MAX_ERROR_CHARS:
        raise QueueInputError(f"an error text has at most {MAX_ERROR_CHARS} characters")
