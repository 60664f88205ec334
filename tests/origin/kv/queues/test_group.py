"""GroupState's indexes: lazy heaps whose tops are always live, and the bounded expiry walk."""

from __future__ import annotations

from plugin_streams.origin.kv.queues.group import DeadLetter, GroupState, Lease
from plugin_streams.origin.kv.queues.records import DeadReason


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


class CountedId(str):
    """A message id that counts the comparisons made with it: a scan of n messages makes at least n."""

    comparisons = 0

    def __lt__(self, other: str) -> bool:
        CountedId.comparisons += 1
        return str.__lt__(self, other)

    def __eq__(self, other: object) -> bool:
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


class CountedTime(int):
    comparisons = 0

    def __lt__(self, other: int) -> bool:
        CountedTime.comparisons += 1
        return int.__lt__(self, other)

    def __gt__(self, other: int) -> bool:
        CountedTime.comparisons += 1
        return int.__gt__(self, other)


def test_leasing_the_next_due_message_makes_logarithmically_many_comparisons() -> None:
    group = GroupState()
    count = 1 << 14
    for number in range(count):
        group.make_ready(CountedId(f"m{number:06d}"), 0)
    CountedId.comparisons = 0
    for token in range(1, 11):
        head = group.next_ready()
        assert head is not None
        group.take_lease(token, Lease(head[1], "w", 1, 100))
    assert group.next_ready() == (0, "m000010")
    assert CountedId.comparisons < 10 * 8 * 14  # a scan would make at least 10 * 16,384


def test_the_expiry_sweep_compares_only_around_the_expired_leases() -> None:
    group = GroupState()
    count = 1 << 14
    for token in range(1, count + 1):
        group.make_ready(f"m{token:06d}", 0)
        expires = 10 if token in (7, 900, 9_000) else 1_000 + token
        group.take_lease(token, Lease(f"m{token:06d}", "w", 1, CountedTime(expires)))
    CountedTime.comparisons = 0
    assert group.expired_tokens(CountedTime(10)) == [7, 900, 9_000]
    assert CountedTime.comparisons < 100  # the walk stops at every entry later than now


def test_dead_letters_page_in_id_order_whatever_order_they_died_in() -> None:
    group = GroupState()
    ids = [f"m{n:03d}" for n in (7, 2, 9, 1, 5, 3)]
    for token, message_id in enumerate(ids, start=1):
        group.make_ready(message_id, 0)
        group.take_lease(token, Lease(message_id, "w", 1, 10))
        group.bury(token, DeadLetter(message_id, 1, DeadReason.TERM, "", 0))
    assert [d.message_id for d in group.dead_page("", 4)] == ["m001", "m002", "m003", "m005"]
    assert [d.message_id for d in group.dead_page("m005", 4)] == ["m007", "m009"]
    group.revive("m002", 0)  # a redrive changes the order's members: the next page sees it
    assert [d.message_id for d in group.dead_page("", 2)] == ["m001", "m003"]
    group.clear_window("m006")
    assert [d.message_id for d in group.dead_page("", 10)] == ["m001", "m003", "m005"]
