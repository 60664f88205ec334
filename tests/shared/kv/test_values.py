"""Values: the typed stored form, the wire form with its markers, KvU64 and the 64 KiB limit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.kv.values import (
    MAX_VALUE_BYTES,
    Json,
    KvU64,
    KvValue,
    decode_value,
    encode_value,
    stored_u64,
    u64_of,
    value_from_wire,
    value_size,
    value_to_wire,
)

json_values: st.SearchStrategy[Json] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
marker_lookalikes: st.SearchStrategy[Json] = st.builds(
    lambda tag, inner: {tag: inner}, st.sampled_from(["$bytes", "$u64", "$json"]), json_values
)
values: st.SearchStrategy[KvValue] = st.one_of(
    json_values,
    marker_lookalikes,
    st.binary(max_size=20),
    st.integers(min_value=0, max_value=2**64 - 1).map(KvU64),
)


@given(values)
def test_stored_form_round_trips(value: KvValue) -> None:
    assert decode_value(encode_value(value)) == value


@given(values)
def test_wire_form_round_trips_through_json_even_for_marker_lookalikes(value: KvValue) -> None:
    wire = json.loads(json.dumps(value_to_wire(value)))
    assert value_from_wire(wire) == value


def test_typed_markers() -> None:
    assert value_from_wire({"$bytes": "AAE"}) == b"\x00\x01"
    assert value_from_wire({"$u64": "18446744073709551615"}) == KvU64(2**64 - 1)
    assert value_from_wire({"$json": {"$u64": "1"}}) == {"$u64": "1"}
    assert value_from_wire({"$u64": "1", "other": 2}) == {"$u64": "1", "other": 2}
    assert value_to_wire(KvU64(7)) == {"$u64": "7"}


def test_stored_tags_and_sizes() -> None:
    assert encode_value({"a": [1, "é"]}) == b'\x01{"a":[1,"\xc3\xa9"]}'
    assert encode_value(b"xy") == b"\x02xy"
    assert encode_value(KvU64(1)) == stored_u64(1) == b"\x03" + (1).to_bytes(8, "big")
    assert u64_of(stored_u64(5)) == 5
    assert u64_of(encode_value(5)) is None
    assert value_size(encode_value(b"abc")) == 3


@pytest.mark.parametrize("bad", [2**64, -1, True, "5", 1.0])
def test_kvu64_out_of_range_or_type_is_400(bad: object) -> None:
    with pytest.raises(BadRequest, match="KvU64"):
        KvU64(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "wire", [{"$bytes": 5}, {"$bytes": "!"}, {"$u64": "-1"}, {"$u64": str(2**64)}, {"$u64": 1.5}, {"$u64": None}]
)
def test_malformed_markers_are_400(wire: Json) -> None:
    with pytest.raises(BadRequest):
        value_from_wire(wire)


@pytest.mark.parametrize("bad", [float("nan"), [float("inf")], {"k": object()}, "\udc00"])
def test_values_json_cannot_carry_are_400(bad: object) -> None:
    with pytest.raises(BadRequest):
        encode_value(bad)  # type: ignore[arg-type]


def test_deeply_nested_json_is_400_not_a_crash() -> None:
    deep: Json = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(BadRequest):
        encode_value(deep)


def test_the_64_kib_limit_names_itself() -> None:
    assert value_size(encode_value(b"x" * MAX_VALUE_BYTES)) == MAX_VALUE_BYTES
    with pytest.raises(PayloadTooLarge, match="65536"):
        encode_value(b"x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(PayloadTooLarge, match="65536"):
        encode_value("x" * MAX_VALUE_BYTES)  # two quote characters over
