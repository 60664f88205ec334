"""Per-group figures for metrics: depth, in flight, redeliveries, dead letters, oldest message age.

Every figure is read from an index the state already keeps, so computing them is O(1) per group
and a metrics scrape never walks a queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin_streams.origin.kv.queues.state import QueueState


@dataclass(frozen=True, slots=True)
class GroupStats:
    depth: int  # ready messages, due or not yet due
    in_flight: int  # leased and not yet answered or expired
    redeliveries: int  # hand-outs beyond each message's first, since the group was created
    acked: int
    dead_letters: int  # entries now in the group's dead-letter queue
    oldest_age_ms: int  # age of the oldest message still owed an outcome; 0 when none is


def group_stats(state: QueueState, group: str, now_ms: int) -> GroupStats:
    found = state.group(group)
    oldest = found.oldest_pending()
    age = 0 if oldest is None else max(0, now_ms - state.messages[oldest].enqueued_at_ms)
    return GroupStats(len(found.ready_due), len(found.leases), found.redeliveries, found.acked, len(found.dead), age)
