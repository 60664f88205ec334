"""The client's KV wire forms (keys, values, operands, commits) and prefix matching, in-process."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams import KvU64
from plugin_streams._kv_atomic import AtomicBuilder
from plugin_streams._kv_http import Fenced, kv_error, server_root
from plugin_streams._kv_wire import (
    is_under,
    key_from_wire,
    key_to_wire,
    under_any,
    value_from_wire,
    value_to_wire,
)
from plugin_streams.errors import BadRequest, Conflict, PayloadTooLarge

key_parts = st.one_of(
    st.text(max_size=8),
    st.binary(max_size=8),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.booleans(),
)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


def test_key_parts_have_the_contract_wire_forms() -> None:
    key = ("users", b"\x00\xff", 12, -3, 1.5, True, False, math.inf, -math.inf)
    assert key_to_wire(key) == [
        "users",
        {"$bytes": "AP8"},
        {"$bigint": "12"},
        {"$bigint": "-3"},
        1.5,
        True,
        False,
        {"$number": "Infinity"},
        {"$number": "-Infinity"},
    ]
    [nan] = key_to_wire((math.nan,))
    assert nan == {"$number": "NaN"}


def test_an_int_part_and_a_float_part_are_different_keys() -> None:
    assert key_to_wire(("n", 1)) != key_to_wire(("n", 1.0))
    assert key_from_wire(["n", 1]) == ("n", 1.0) and isinstance(key_from_wire(["n", 1])[1], float)
    assert isinstance(key_from_wire([{"$bigint": "1"}])[0], int)


@given(st.lists(key_parts, max_size=6).map(tuple))
def test_keys_survive_the_round_trip(key: tuple[Any, ...]) -> None:
    back = key_from_wire(through_json(key_to_wire(key)))
    assert back == key
    assert [type(part) for part in back] == [type(part) for part in key]


@pytest.mark.parametrize(
    "bad",
    [[{"$bigint": "1.5"}], [{"$bytes": "a+b/"}], [{"$number": "nan"}], [None], [["nested"]], {"not": "a list"}],
)
def test_malformed_wire_keys_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        key_from_wire(bad)


@pytest.mark.parametrize("bad", ["users/alice", b"raw", [None], [object()]])
def test_what_is_not_a_key_is_refused_before_any_request(bad: Any) -> None:
    with pytest.raises(TypeError):
        key_to_wire(bad)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ({"a": [1, None, "x"]}, {"a": [1, None, "x"]}),
        (b"\x01\x02", {"$bytes": "AQI"}),
        (KvU64(2**64 - 1), {"$u64": "18446744073709551615"}),
        ({"$u64": "5"}, {"$json": {"$u64": "5"}}),  # a document that looks like a marker
        ({"$json": 1}, {"$json": {"$json": 1}}),
        ({"$other": 1}, {"$other": 1}),  # not a marker: itself
        ({"$u64": "5", "b": 1}, {"$u64": "5", "b": 1}),  # two keys: not a marker
        (None, None),
    ],
)
def test_values_have_the_contract_wire_forms(value: Any, wire: Any) -> None:
    assert value_to_wire(value) == wire
    assert value_from_wire(through_json(wire)) == value


def test_kvu64_is_an_unsigned_64_bit_integer() -> None:
    assert int(KvU64(7)) == 7
    for bad in (-1, 2**64, True, 1.0):
        with pytest.raises(ValueError):
            KvU64(bad)


def test_prefix_matching_follows_list_semantics() -> None:
    users = key_to_wire(("users",))
    assert is_under(key_to_wire(("users", "alice")), users)
    assert is_under(key_to_wire(("users", "alice", 3)), users)
    assert not is_under(users, users)  # a key is not under itself (as in Deno's list)
    assert not is_under(key_to_wire(("usersx", "a")), users)
    assert not is_under(key_to_wire(("posts", "users")), users)
    assert is_under(key_to_wire(("a",)), [])  # the empty prefix holds every key
    assert not is_under([], [])


def test_prefix_parts_compare_by_meaning() -> None:
    # JSON numbers compare as floats, whatever their spelling; bigint and float never match.
    assert is_under(["n", 1, "x"], ["n", 1.0])
    assert not is_under(["n", {"$bigint": "1"}, "x"], ["n", 1.0])
    assert is_under([{"$bigint": "007"}, "x"], [{"$bigint": "7"}])
    # bools are not numbers (True == 1 in Python, not in Deno).
    assert not is_under([True, "x"], [1])
    assert not is_under([1, "x"], [True])
    assert is_under([True, "x"], [True]) and not is_under([False, "x"], [True])
    # bytes with or without base64 padding; NaN matches NaN.
    assert is_under([{"$bytes": "AQ=="}, "x"], [{"$bytes": "AQ"}])
    assert is_under([{"$number": "NaN"}, "x"], [{"$number": "NaN"}])
    assert not is_under([{"$bytes": "AQ"}, "x"], ["AQ"])
    assert under_any(["b", "x"], [["a"], ["b"]]) and not under_any(["c", "x"], [["a"], ["b"]])


@given(st.lists(key_parts, min_size=1, max_size=4).map(tuple), st.lists(key_parts, max_size=3).map(tuple))
def test_a_key_extended_from_a_prefix_is_under_it(prefix: tuple[Any, ...], rest: tuple[Any, ...]) -> None:
    key = prefix + rest
    assert is_under(through_json(key_to_wire(key)), key_to_wire(prefix)) == bool(rest)


def test_an_atomic_operation_has_the_contract_wire_form() -> None:
    op = (
        AtomicBuilder()
        .check(("a",), None)
        .check(("b",), "0" * 20)
        .set(("a",), {"x": 1}, expire_in_ms=1500.4)
        .delete(("b",))
        .sum(("c",), 5)
        .min(("c",), KvU64(3))
        .max(("c",), 9)
        .enqueue(b"job", delay=10, backoff_schedule=[1, 2], keys_if_undelivered=[("failed", 1)])
    )
    assert op.to_wire() == {
        "checks": [{"key": ["a"], "versionstamp": None}, {"key": ["b"], "versionstamp": "0" * 20}],
        "mutations": [
            {"type": "set", "key": ["a"], "value": {"x": 1}, "expireIn": 1500},
            {"type": "delete", "key": ["b"]},
            {"type": "sum", "key": ["c"], "value": {"$u64": "5"}},
            {"type": "min", "key": ["c"], "value": {"$u64": "3"}},
            {"type": "max", "key": ["c"], "value": {"$u64": "9"}},
            {
                "type": "enqueue",
                "value": {"$bytes": "am9i"},
                "delay": 10,
                "backoffSchedule": [1, 2],
                "keysIfUndelivered": [["failed", {"$bigint": "1"}]],
            },
        ],
    }
    with pytest.raises(ValueError):
        AtomicBuilder().set(("a",), 1, expire_in_ms=-1)
    with pytest.raises(ValueError):
        AtomicBuilder().sum(("a",), -1)


@pytest.mark.parametrize(
    ("base", "root"),
    [
        ("http://h:1/streams/api/v1", "http://h:1"),
        ("http://h:1/v1/stream", "http://h:1"),
        ("http://h:1/v1/stream/", "http://h:1"),
        ("http://h:1/mounted/streams/api/v1", "http://h:1/mounted"),
        ("http://h:1", "http://h:1"),
    ],
)
def test_the_server_root_is_the_base_without_an_api_path(base: str, root: str) -> None:
    assert server_root(base) == root


def test_kv_errors_name_the_server_reason() -> None:
    error = kv_error(400, b'{"error":"key is 3000 bytes encoded, over the limit of 2048 bytes"}')
    assert isinstance(error, BadRequest) and "2048" in error.message and error.status == 400
    assert isinstance(kv_error(413, b'{"error":"value too big"}'), PayloadTooLarge)
    fenced = kv_error(409, b'{"error":"stale token","code":"FENCED"}')
    assert isinstance(fenced, Fenced) and isinstance(fenced, Conflict) and fenced.code == "FENCED"
    assert not isinstance(kv_error(409, b'{"ok":false,"error":"a check failed"}'), Fenced)
    assert kv_error(502, b"<html>bad gateway</html>").status == 502
