"""The catch-up read plan (origin/reads.py `_plan`): found by bisection, the same as walking record by record.

`walked` below is the plain record-by-record definition of a chunked read (the one the origin
used before planning by bisection); the two must agree for every start position of random
streams: zero-size records (closures), records larger than a chunk, reads starting inside a
record, and fork chains whose fork point lies anywhere in the source.
"""

from __future__ import annotations

from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_streams.origin.reads import _plan, _Span, _span
from plugin_streams.origin.storage.base import ForkLink, StreamConfig
from plugin_streams.origin.stream import StreamState


def walked(state: StreamState, start: int, chunk_size: int) -> tuple[list[_Span], int, bool]:
    boundary = -1
    spans: list[_Span] = []
    end = start
    for member, upper in reversed(state.chain()):
        if end >= upper or end < member.base:
            continue
        first = bisect_right(member.starts, end) - 1
        if first < 0 or member.record_end(first) <= end:
            first += 1
        skip = end - member.starts[first] if first < len(member.starts) else 0
        if boundary < 0:
            boundary = ((start - skip) // chunk_size + 1) * chunk_size
        index = first
        while index < len(member.starts) and member.starts[index] < upper:
            record_end = member.record_end(index)
            if record_end > boundary and end > start:
                if index > first:
                    spans.append(_span(member, first, index, skip))
                return spans, end, True
            end = record_end
            index += 1
        if index > first:
            spans.append(_span(member, first, index, skip))
    return spans, end, False


def stream(generation: int, sizes: list[int], source: StreamState | None = None, fork_at: int = 0) -> StreamState:
    fork = None if source is None else ForkLink(source.generation, "src", fork_at, None, 0)
    config = StreamConfig(generation, f"s{generation}", "application/octet-stream", None, None, 0, fork)
    state = StreamState(config, source, 0)
    for size in sizes:
        state.commit_meta(size, 0, None)
    return state


# Sizes and chunk sizes from small sets of round numbers, so records often end exactly on a
# chunk boundary (the case where "ends by the boundary" and "crosses it" must not be confused).
sizes = st.lists(st.sampled_from([0, 0, 1, 2, 3, 4, 5, 8, 10, 16, 20, 32, 64, 100]), max_size=30)
chunk_sizes = st.sampled_from([1, 2, 4, 8, 10, 16, 20, 32, 64])


@settings(max_examples=400, deadline=None)
@given(sizes, sizes, st.integers(0, 10_000), chunk_sizes, st.booleans())
def test_plan_matches_the_record_by_record_walk(
    root_sizes: list[int], child_sizes: list[int], fork_pick: int, chunk_size: int, forked: bool
) -> None:
    root = stream(1, root_sizes)
    state = root
    if forked:
        state = stream(2, child_sizes, root, fork_pick % (root.tail + 1))
    for start in range(state.chain()[-1][0].base, state.tail + 1):
        assert _plan(state, start, chunk_size) == walked(state, start, chunk_size), (start, chunk_size)
