"""The indexes behind bounded reads and listings: sparse JSON message marks, sorted stream paths.

Property tests against the obvious answers (a full scan, a sorted copy), since the real-process
tests (test_big_json_batches, tests/rest/test_loop_stays_free) only measure that they are fast.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_streams.origin.paths_index import SortedPaths
from plugin_streams.shared import jsonmode
from plugin_streams.shared.jsonmarks import MessageMarks

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=',[]{}"\\ab', max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


def _stored(batch: list[object]) -> bytes:
    return jsonmode.encode_messages([json.dumps(v, separators=(",", ":")).encode() for v in batch])


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=60), st.sampled_from([4, 16, 64]), st.integers(0, 400))
def test_marks_answer_like_a_full_scan(batch: list[object], step: int, budget: int) -> None:
    stored = _stored(batch)
    ends = {0, *jsonmode.message_ends(stored)}
    full = MessageMarks.build(stored, step=step)
    assert full.scanned == len(stored)
    assert [p for p in range(len(stored) + 1) if full.is_end(stored, p)] == sorted(ends)
    bounded = MessageMarks.build(stored, step=step, budget=budget)
    known = [p for p in range(len(stored) + 1) if bounded.knows(p)]
    assert [p for p in known if bounded.is_end(stored, p)] == sorted(e for e in ends if e <= bounded.scanned)


@given(st.lists(values, max_size=40), st.integers(1, 50), st.sampled_from([b"", b" \n", b"\xef\xbb\xbf"]))
def test_count_batch_counts_top_level_values_up_to_the_cap(batch: list[object], cap: int, pad: bytes) -> None:
    body = pad + json.dumps(batch, indent=1).encode()
    assert jsonmode.count_batch(body, cap) == min(len(batch), cap + 1)
    assert jsonmode.count_batch(pad + json.dumps({"a": [1, 2]}).encode(), cap) == 1


def test_message_ends_from_a_boundary_stops_at_the_limit() -> None:
    stored = _stored([1, [2, 3], {"a": ","}, "x"])
    every = jsonmode.message_ends(stored)
    assert jsonmode.message_ends(stored, every[0], limit=2) == every[1:3]
    assert jsonmode.is_message_end(stored, every[2], every[0])
    assert not jsonmode.is_message_end(stored, every[2] - 1, every[0])


@given(st.lists(st.tuples(st.booleans(), st.text(alphabet="ab/", max_size=4)), max_size=80), st.text("ab/", max_size=3))
def test_sorted_paths_stay_sorted_through_every_change(changes: list[tuple[bool, str]], first: str) -> None:
    paths: SortedPaths[int] = SortedPaths()
    model: dict[str, int] = {}
    for i, (add, path) in enumerate(changes):
        if add:
            paths[path] = model[path] = i
        else:
            assert paths.pop(path, None) == model.pop(path, None)
    assert dict(paths) == model
    assert list(paths.names_from(first)) == sorted(p for p in model if p >= first)


def test_names_from_survives_removals_while_iterating() -> None:
    paths: SortedPaths[int] = SortedPaths()
    for name in "abcdefg":
        paths[name] = 0
    seen = []
    for name in paths.names_from("b"):
        seen.append(name)
        if name == "c":
            del paths["b"], paths["c"], paths["e"]  # the current name and others, before and after
    assert seen == ["b", "c", "d", "f", "g"]
