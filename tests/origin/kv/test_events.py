"""Change events: the text a commit becomes in its change stream, and the offset it ends at.

The offset a rendered event names must be the one the stream gives the position after it, or
every watcher resuming from it would land mid-message: checked against the JSON stream's own
stored form (shared.jsonmode), for random drafts.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_streams.origin.kv.events import EXPIRED, Change, Draft, message_id, parse, parse_messages, render
from plugin_streams.origin.kv.queues.records import Acked, Leased
from plugin_streams.shared import jsonmode
from plugin_streams.shared.kv.commits import Enqueue
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import KvU64, encode_value
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset

_parts = st.one_of(st.text(max_size=8), st.integers(-(2**70), 2**70), st.booleans(), st.binary(max_size=6))
_keys = st.lists(_parts, min_size=1, max_size=3).map(lambda parts: encode_key(tuple(parts)))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_values = st.one_of(_json.map(encode_value), st.binary(max_size=20).map(encode_value), st.just(encode_value(KvU64(7))))
_changes = st.one_of(
    st.builds(Change, _keys, _values, st.one_of(st.none(), st.integers(0, 2**50))),
    st.builds(Change, _keys, st.none(), st.none(), st.sampled_from([None, EXPIRED])),
)
_enqueues = st.builds(
    Enqueue,
    _values,
    st.integers(0, 10_000),
    st.lists(_keys, max_size=2).map(tuple),
    st.one_of(st.none(), st.lists(st.integers(0, 3_600_000), max_size=3).map(tuple)),
)
_records = st.one_of(
    st.builds(Acked, st.text(min_size=1, max_size=5), st.integers(1, 2**40)),
    st.builds(
        Leased,
        st.text(min_size=1, max_size=5),
        st.text(min_size=1, max_size=40),
        st.text(min_size=1, max_size=5),
        st.integers(1, 99),
        st.integers(1, 9),
        st.integers(0, 2**50),
    ),
)
_drafts = st.builds(
    Draft, st.lists(_changes, max_size=4), st.lists(_enqueues, max_size=3), st.lists(_records, max_size=3)
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**31), st.integers(0, 2**40), st.integers(0, 2**45), _drafts)
def test_the_offset_an_event_names_is_where_the_stream_puts_its_end(
    generation: int, position: int, at: int, draft: Draft
) -> None:
    before = Offset(generation, position)
    event, text = render(before, at, draft)
    stored = jsonmode.encode_messages(jsonmode.parse_messages(b"[" + text + b"]", allow_empty_array=False))
    assert stored == text + b","  # the stream stores exactly the rendered text
    assert event.offset == Offset(generation, position + len(stored))
    assert event.versionstamp == Versionstamp.from_offset(event.offset)
    wire = json.loads(text)
    assert wire["offset"] == str(event.offset) and wire["versionstamp"] == str(event.versionstamp)
    assert [item["id"] for item in wire["enqueued"]] == [
        message_id(event.offset, i) for i in range(len(draft.enqueues))
    ]
    again = parse(wire)
    assert again.offset == event.offset and again.at_ms == at
    assert again.draft.changes == draft.changes
    assert again.draft.enqueues == draft.enqueues
    assert again.draft.queue == draft.queue
    assert [m.id for m in again.messages()] == [m.id for m in event.messages()]


def test_a_sweeper_delete_says_why_and_a_batch_parses_back_in_order() -> None:
    key = encode_key(("session", "a"))
    first, text1 = render(Offset(3, 0), 10, Draft([Change(key, encode_value({"n": 1}), 99)]))
    second, text2 = render(first.offset, 20, Draft([Change(key, None, None, EXPIRED)]))
    assert json.loads(text2)["changes"] == [{"key": ["session", "a"], "op": "delete", "cause": "expired"}]
    events = parse_messages(jsonmode.frame(text1 + b"," + text2 + b","))
    assert [e.offset for e in events] == [first.offset, second.offset]
    assert events[1].draft.changes[0].cause == EXPIRED


def test_message_ids_sort_in_enqueue_order_across_commits() -> None:
    ids = [message_id(Offset(1, p), i) for p in (9, 10, 99, 100) for i in range(3)]
    assert ids == sorted(ids)
