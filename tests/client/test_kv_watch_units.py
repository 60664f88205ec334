"""The watch's pure parts, in-process: a commit's matching changes, offsets' order, coalescing."""

from __future__ import annotations

import random
from typing import Any

from plugin_streams import KvU64
from plugin_streams._kv_watch import Coalescer, commit_changes, is_after
from plugin_streams._kv_wire import key_to_wire


def offset(n: int) -> str:
    return f"{0:016d}_{n:016d}"


def record(n: int, *changes: dict[str, Any]) -> dict[str, Any]:
    return {"versionstamp": f"{n:020x}", "offset": offset(n), "at": 1000 + n, "changes": list(changes), "queue": []}


def set_change(key: tuple[Any, ...], value: Any) -> dict[str, Any]:
    return {"key": key_to_wire(key), "op": "set", "value": value, "expireAt": None}


def test_a_commit_gives_its_matching_changes_in_order_and_marks_the_last() -> None:
    commit = record(
        7,
        set_change(("users", "a"), {"n": 1}),
        set_change(("posts", "p"), 1),
        {"key": ["users", "b"], "op": "delete", "cause": "expired"},
        set_change(("users", "c"), {"$u64": "3"}),
        set_change(("users",), "the prefix itself"),
    )
    changes = commit_changes(commit, [key_to_wire(("users",))])
    assert [(c.key, c.op, c.value, c.last) for c in changes] == [
        (("users", "a"), "set", {"n": 1}, False),
        (("users", "b"), "delete", None, False),
        (("users", "c"), "set", KvU64(3), True),
    ]
    assert {(c.offset, c.versionstamp, c.at) for c in changes} == {(offset(7), f"{7:020x}", 1007)}
    assert changes[1].cause == "expired" and changes[0].cause is None
    assert commit_changes(record(8), [[]]) == []  # a queue-only commit
    assert commit_changes(commit, [key_to_wire(("nothing",))]) == []
    assert len(commit_changes(commit, [[]])) == 5  # the empty prefix: every key


def test_offsets_order_by_their_fixed_width_text() -> None:
    assert is_after(offset(10), offset(9)) and not is_after(offset(9), offset(10))
    assert not is_after(offset(9), offset(9))
    assert is_after(offset(0), None) and is_after(offset(0), "-1")  # a start point: everything is after it


def changes_of(n: int, *keys: str) -> list[Any]:
    return commit_changes(record(n, *(set_change((k,), n) for k in keys)), [[]])


def test_coalescing_keeps_the_latest_value_per_key_in_commit_order() -> None:
    coalescer = Coalescer()
    coalescer.add(changes_of(1, "a", "b"))
    coalescer.add(changes_of(2, "a"))
    coalescer.add(changes_of(3, "c"))
    taken = []
    while (change := coalescer.take()) is not None:
        taken.append((change.key, change.value, change.offset, change.last))
    assert taken == [
        (("b",), 1, offset(1), True),
        (("a",), 2, offset(2), True),
        (("c",), 3, offset(3), True),
    ]


def test_coalescing_marks_last_only_after_every_change_of_a_commit() -> None:
    coalescer = Coalescer()
    coalescer.add(changes_of(1, "a", "b", "c"))
    assert [c.last for c in iter(coalescer.take, None)] == [False, False, True]


def test_coalescing_never_loses_the_final_value_and_offsets_never_go_down() -> None:
    rng = random.Random(14)
    coalescer = Coalescer()
    final: dict[str, int] = {}
    seen: dict[str, int] = {}
    delivered_offsets: list[str] = []
    for n in range(1, 500):
        keys = rng.sample("abcdefgh", rng.randint(1, 3))
        coalescer.add(changes_of(n, *keys))
        final.update(dict.fromkeys(keys, n))
        # A slow consumer: it takes a change now and then, never keeping up.
        if rng.random() < 0.3 and (change := coalescer.take()) is not None:
            seen[str(change.key[0])] = change.value
            delivered_offsets.append(change.offset)
    for change in iter(coalescer.take, None):
        seen[str(change.key[0])] = change.value
        delivered_offsets.append(change.offset)
    assert seen == final
    assert delivered_offsets == sorted(delivered_offsets)
    assert len(delivered_offsets) < sum(1 for _ in range(1, 500))  # it did skip intermediate values


def test_numeric_keys_of_different_types_coalesce_apart() -> None:
    coalescer = Coalescer()
    coalescer.add(commit_changes(record(1, set_change(("n", 1), "bigint"), set_change(("n", 1.0), "float")), [[]]))
    assert [c.value for c in iter(coalescer.take, None)] == ["bigint", "float"]
