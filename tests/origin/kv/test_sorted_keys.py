"""The blocked sorted key set against a plain sorted list, across block splits and removals."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.origin.kv.sorted_keys import SortedKeys

byte_keys = st.binary(min_size=0, max_size=3)


@given(st.lists(st.tuples(st.booleans(), byte_keys), max_size=200), byte_keys, byte_keys, st.booleans())
def test_matches_a_sorted_list(ops: list[tuple[bool, bytes]], low: bytes, high: bytes, reverse: bool) -> None:
    keys = SortedKeys()
    model: set[bytes] = set()
    for add, key in ops:
        if add and key not in model:
            keys.add(key)
            model.add(key)
        elif not add and key in model:
            keys.remove(key)
            model.discard(key)
    assert len(keys) == len(model)
    expected = sorted(k for k in model if low <= k < high)
    assert list(keys.irange(low, high, reverse=reverse)) == (expected[::-1] if reverse else expected)


def test_many_keys_split_into_blocks_and_stay_ordered() -> None:
    rng = random.Random(7)
    pool = [rng.randbytes(4) for _ in range(5000)]
    keys = SortedKeys()
    for key in set(pool):
        keys.add(key)
    model = sorted(set(pool))
    for key in model[::3]:
        keys.remove(key)
    model = [k for i, k in enumerate(model) if i % 3]
    assert list(keys.irange(b"", b"\xff" * 5)) == model
    assert list(keys.irange(model[100], model[2000], reverse=True)) == model[100:2000][::-1]
    rebuilt = SortedKeys(model)
    assert list(rebuilt.irange(model[7], model[3000])) == model[7:3000]


def test_removing_an_absent_key_is_a_key_error() -> None:
    keys = SortedKeys([b"a", b"c"])
    with pytest.raises(KeyError):
        keys.remove(b"b")
    with pytest.raises(KeyError):
        SortedKeys().remove(b"a")
