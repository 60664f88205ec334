"""Tuple keys: Deno's encoding byte for byte, its order, decoding, the prefix range, wire form and limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.kv.keys import (
    MAX_KEY_BYTES,
    BadKey,
    Key,
    decode_key,
    encode_key,
    key_from_wire,
    key_to_wire,
    prefix_range,
)
from tests.shared.kv.strategies import keys, reference_order, same_key


def test_known_encodings_match_denokv() -> None:
    # The bijection vectors of denokv_proto's codec tests.
    assert encode_key(("hello",)) == bytes([0x02, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x00])
    assert encode_key((b"\x01\x02\x00\x07\x08",)) == bytes([0x01, 0x01, 0x02, 0x00, 0xFF, 0x07, 0x08, 0x00])
    assert encode_key(("hello", b"\x01\x02\x00\x07\x08")) == bytes(
        [0x02, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x00, 0x01, 0x01, 0x02, 0x00, 0xFF, 0x07, 0x08, 0x00]
    )


def test_integer_and_float_encodings_follow_the_tuple_layer() -> None:
    assert encode_key((0,)) == b"\x14"
    assert encode_key((1,)) == b"\x15\x01"
    assert encode_key((-1,)) == b"\x13\xfe"
    assert encode_key((256,)) == b"\x16\x01\x00"
    assert encode_key((2**64,)) == b"\x1d\x09\x01" + b"\x00" * 8
    assert encode_key((-(2**64),)) == b"\x0b\xf6\xfe" + b"\xff" * 8
    assert encode_key((0.0,)) == b"\x21\x80" + b"\x00" * 7
    assert encode_key((-0.0,)) == b"\x21\x7f" + b"\xff" * 7
    assert encode_key((False,)) == b"\x26"
    assert encode_key((True,)) == b"\x27"


def test_type_order_is_bytes_str_int_float_false_true() -> None:
    ordered: list[Key] = [(b"\xff",), ("",), (2**100,), (-math.inf,), (False,), (True,)]
    encoded = [encode_key(key) for key in ordered]
    assert encoded == sorted(encoded)


def test_float_order_includes_nans_and_signed_zeros() -> None:
    ordered: list[Key] = [(-math.nan,), (-math.inf,), (-10.0,), (-0.0,), (0.0,), (10.0,), (math.inf,), (math.nan,)]
    encoded = [encode_key(key) for key in ordered]
    assert encoded == sorted(encoded)
    assert len(set(encoded)) == len(encoded)


def test_nans_are_canonicalised() -> None:
    import struct

    odd_nan = struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0]
    assert encode_key((odd_nan,)) == encode_key((math.nan,))


def test_a_key_is_ordered_before_its_extensions() -> None:
    assert encode_key(("a",)) < encode_key(("a", b"")) < encode_key(("a\x00",)) < encode_key(("b",))


@given(keys)
def test_decode_inverts_encode(key: Key) -> None:
    assert same_key(decode_key(encode_key(key)), key)


@given(keys, keys)
def test_byte_order_is_denos_tuple_order(a: Key, b: Key) -> None:
    ea, eb = encode_key(a), encode_key(b)
    ra, rb = reference_order(a), reference_order(b)
    assert (ea < eb) == (ra < rb)
    assert (ea == eb) == (ra == rb)


@given(keys, keys, st.booleans())
def test_prefix_range_holds_exactly_the_keys_strictly_under_the_prefix(prefix: Key, tail: Key, extend: bool) -> None:
    key = prefix + tail if extend else tail
    low, high = prefix_range(encode_key(prefix))
    under = len(key) > len(prefix) and same_key(key[: len(prefix)], prefix)
    assert (low <= encode_key(key) < high) == under


@given(keys)
def test_wire_form_round_trips_through_json(key: Key) -> None:
    import json

    wire = json.loads(json.dumps(key_to_wire(key), allow_nan=False))
    assert same_key(key_from_wire(wire), key)


def test_wire_form_shapes() -> None:
    assert key_to_wire(("a", 1, 1.5, b"\xff", True, math.inf)) == [
        "a",
        {"$bigint": "1"},
        1.5,
        {"$bytes": "_w"},
        True,
        {"$number": "Infinity"},
    ]
    # A bare JSON number is Deno's number, even without a fraction.
    assert key_from_wire([1]) == (1.0,)
    assert type(key_from_wire([1])[0]) is float


@pytest.mark.parametrize(
    "wire",
    [
        "not-a-list",
        [None],
        [[1]],
        [{"$bigint": "1.5"}],
        [{"$bigint": 1}],
        [{"$bytes": "a+b/"}],
        [{"$bytes": "!!!"}],
        [{"$number": "nan"}],
        [{"$unknown": "x"}],
        [{"$bigint": "1", "$bytes": ""}],
        [{"$bigint": str(2**2048)}],
        ["\ud800"],
    ],
)
def test_malformed_wire_keys_are_400(wire: object) -> None:
    with pytest.raises(BadRequest):
        encode_key(key_from_wire(wire))


def test_a_key_over_2048_bytes_is_413_naming_the_limit() -> None:
    assert len(encode_key((b"x" * (MAX_KEY_BYTES - 2),))) == MAX_KEY_BYTES
    with pytest.raises(PayloadTooLarge, match="2048"):
        encode_key((b"x" * (MAX_KEY_BYTES - 1),))


@pytest.mark.parametrize("data", [b"\x02abc", b"\x03", b"\x15", b"\x1d\x05\x01", b"\x21\x00", b"\x02\xff\x00"])
def test_undecodable_bytes_are_400(data: bytes) -> None:
    with pytest.raises(BadKey):
        decode_key(data)


@given(st.lists(keys, min_size=2, max_size=8))
def test_sorting_encodings_sorts_keys(batch: list[Key]) -> None:
    by_bytes = sorted(batch, key=encode_key)
    by_reference = sorted(batch, key=reference_order)
    assert [encode_key(k) for k in by_bytes] == [encode_key(k) for k in by_reference]
