"""The record encoding: every type round-trips, bytes are canonical, and bad bytes are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.origin.kv.queues import CorruptEncoding, QueuedMessage, QueueRecord, decode_record, encode_record
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

EVERY_TYPE: list[QueueRecord] = [
    Enqueued(QueuedMessage("0001_0002", b"\x00v\xff", 5, 7, (1, 2), (b"k\x00",))),
    Enqueued(QueuedMessage("é", b"", 0)),
    GroupCreated("g", None),
    GroupCreated("g", ""),
    Leased("g", "m", "worker-é", 2**40, 3, -1),
    Acked("g", 1),
    Nacked("g", 1, "boom\n", 99),
    Extended("g", 1, 2),
    LeaseExpired("g", 1, 2),
    DeadLettered("g", 1, "m", 6, DeadReason.TERM, "", 3, b"v", ()),
    Redriven("g", ("a", "b"), 4),
    GroupReset("g", "m"),
    Trimmed("m"),
]


@pytest.mark.parametrize("record", EVERY_TYPE, ids=lambda record: type(record).__name__)
def test_every_record_type_round_trips(record: QueueRecord) -> None:
    data = encode_record(record)
    assert data[0] == 1 and decode_record(data) == record and encode_record(decode_record(data)) == data


@pytest.mark.parametrize("record", EVERY_TYPE, ids=lambda record: type(record).__name__)
def test_truncated_or_padded_bytes_are_refused(record: QueueRecord) -> None:
    data = encode_record(record)
    for cut in range(len(data)):
        with pytest.raises(CorruptEncoding):
            decode_record(data[:cut])
    with pytest.raises(CorruptEncoding, match="left over"):
        decode_record(data + b"\x00")


def test_unknown_version_tag_reason_and_invalid_message_are_refused() -> None:
    data = encode_record(Acked("g", 1))
    with pytest.raises(CorruptEncoding, match="format 2"):
        decode_record(b"\x02" + data[1:])
    with pytest.raises(CorruptEncoding, match="tag 99"):
        decode_record(data[:1] + b"\x63" + data[2:])
    dead = encode_record(DeadLettered("g", 1, "m", 1, DeadReason.TERM, "", 0, b"", ()))
    with pytest.raises(CorruptEncoding, match="reason"):
        decode_record(dead.replace(b"term", b"tarm"))
    enqueued = encode_record(Enqueued(QueuedMessage("m", b"", 0, delay_ms=1)))
    negative_delay = enqueued.replace((1).to_bytes(8, "big"), (-1).to_bytes(8, "big", signed=True))
    with pytest.raises(CorruptEncoding, match="invalid"):
        decode_record(negative_delay)


texts = st.text(max_size=8)
ints = st.integers(-(2**63), 2**63 - 1)


@given(
    st.one_of(
        st.builds(Leased, texts, texts, texts, ints, ints, ints),
        st.builds(Nacked, texts, ints, texts, ints),
        st.builds(Redriven, texts, st.lists(texts, max_size=4).map(tuple), ints),
        st.builds(
            DeadLettered, texts, ints, texts, ints, st.sampled_from(DeadReason), texts, ints, st.binary(), st.just(())
        ),
        st.builds(GroupCreated, texts, st.none() | texts),
    )
)
def test_any_field_values_round_trip(record: QueueRecord) -> None:
    assert decode_record(encode_record(record)) == record
