"""GroupState's indexes: lazy heaps whose tops are always live, and the bounded expiry walk."""

from __future__ import annotations

from plugin_streams.origin.kv.queues.group import GroupState, Lease


def test_the_ready_top_skips_messages_that_left_or_moved() -> None:
    group = GroupState()
    for number, due in enumerate((30, 10, 20)):
        group.make_ready(f"m{number}", due)
    assert group.next_ready() == (10, "m1")
    group.take_lease(1, Lease("m1", "w", 1, 100))
    assert group.next_ready() == (20, "m2")
    group.retry_later(1, "e", 5)
    assert group.next_ready() == (5, "m1") and group.last_error == {"m1": "e"}
    assert group.oldest_pending() == "m0"


def test_expired_tokens_walks_only_expired_entries_and_skips_stale_ones() -> None:
    group = GroupState()
    for token in range(1, 201):
        group.make_ready(f"m{token:03d}", 0)
        group.take_lease(token, Lease(f"m{token:03d}", "w", 1, 1_000 + token))
    group.extend_lease(3, 5_000)  # its old deadline entry is now stale
    group.finish(4)
    assert group.expired_tokens(1_005) == [1, 2, 5]
    assert group.expired_tokens(999) == []
    assert len(group.expired_tokens(10_000)) == 199


def test_finishing_the_oldest_moves_the_oldest_pending_on() -> None:
    group = GroupState()
    group.make_ready("a", 0)
    group.make_ready("b", 0)
    group.take_lease(1, Lease("a", "w", 1, 10))
    assert group.oldest_pending() == "a"
    assert group.finish(1) == "a"
    assert group.oldest_pending() == "b" and group.acked == 1
