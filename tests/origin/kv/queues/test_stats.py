"""Per-group figures for metrics."""

from __future__ import annotations

from plugin_streams.origin.kv.queues import GroupStats, QueuedMessage, create_group, enqueue, group_stats, lease, nack
from tests.origin.kv.queues.log import QueueLog


def test_depth_in_flight_redeliveries_dead_letters_and_oldest_age() -> None:
    log = QueueLog()
    log.append(create_group(log.state, "g", ""))
    assert group_stats(log.state, "g", 0) == GroupStats(0, 0, 0, 0, 0, 0)
    log.append(enqueue(log.state, QueuedMessage("m1", b"v", 100, backoff_schedule_ms=(0,))))
    log.append(enqueue(log.state, QueuedMessage("m2", b"v", 200, delay_ms=10_000)))
    first = lease(log.state, "g", "w", 300, 1_000)
    assert first is not None
    log.append(first)
    assert group_stats(log.state, "g", 400) == GroupStats(1, 1, 0, 0, 0, 300)
    log.append(nack(log.state, "g", first.token, 400, "e"))
    again = lease(log.state, "g", "w", 400, 1_000)
    assert again is not None and again.message_id == "m1"
    log.append(again)
    log.append(nack(log.state, "g", again.token, 500, "e"))
    assert group_stats(log.state, "g", 600) == GroupStats(1, 0, 1, 0, 1, 400)
