"""Atomic commits: parsing the wire form, Deno's limits, and the 4xx each bad input gets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.kv.commits import (
    MAX_COMMIT_BYTES,
    AtomicCommit,
    Check,
    DeleteMutation,
    Enqueue,
    SetMutation,
    U64Mutation,
    commit_from_wire,
    commit_size,
    validate_commit,
)
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import encode_value
from plugin_streams.shared.kv.versionstamps import Versionstamp


def test_every_mutation_type_parses() -> None:
    commit = commit_from_wire(
        {
            "checks": [
                {"key": ["a"], "versionstamp": None},
                {"key": ["b"], "versionstamp": "000000010000000000ff"},
            ],
            "mutations": [
                {"type": "set", "key": ["a"], "value": {"x": 1}, "expireIn": 1000},
                {"type": "delete", "key": ["b", {"$bigint": "2"}]},
                {"type": "sum", "key": ["n"], "value": {"$u64": "5"}},
                {"type": "min", "key": ["n"], "value": 3},
                {"type": "max", "key": ["n"], "value": "9"},
                {
                    "type": "enqueue",
                    "value": "job",
                    "delay": 10,
                    "keysIfUndelivered": [["failed", "job"]],
                    "backoffSchedule": [100, 1000],
                },
            ],
        }
    )
    assert commit.checks == (
        Check(encode_key(("a",)), None),
        Check(encode_key(("b",)), Versionstamp(0x000000010000000000FF)),
    )
    assert commit.mutations == (
        SetMutation(encode_key(("a",)), encode_value({"x": 1}), 1000),
        DeleteMutation(encode_key(("b", 2))),
        U64Mutation("sum", encode_key(("n",)), 5),
        U64Mutation("min", encode_key(("n",)), 3),
        U64Mutation("max", encode_key(("n",)), 9),
        Enqueue(encode_value("job"), 10, (encode_key(("failed", "job")),), (100, 1000)),
    )


def test_defaults_and_empty_commit() -> None:
    assert commit_from_wire({}) == AtomicCommit((), ())
    (enqueue,) = commit_from_wire({"mutations": [{"type": "enqueue", "value": 1}]}).mutations
    assert enqueue == Enqueue(encode_value(1), 0, (), None)


def _set(i: int) -> dict[str, Any]:
    return {"type": "set", "key": ["k", {"$bigint": str(i)}], "value": "x"}


@pytest.mark.parametrize(
    ("wire", "needle"),
    [
        ([], "JSON object"),
        ({"checks": [], "extra": 1}, "JSON object"),
        ({"checks": {}}, "array"),
        ({"checks": [{"key": ["a"], "versionstamp": None}] * 11}, "limit of 10"),
        ({"mutations": [_set(i) for i in range(1001)]}, "limit of 1000"),
        ({"checks": [{"key": ["a"]}]}, "exactly"),
        ({"checks": [{"key": ["a"], "versionstamp": "xyz"}]}, "versionstamp"),
        ({"checks": [{"key": "a", "versionstamp": None}]}, "array"),
        ({"mutations": [{"type": "append", "key": ["a"], "value": 1}]}, "unknown type"),
        ({"mutations": [{"key": ["a"], "value": 1}]}, "unknown type"),
        ({"mutations": ["set"]}, "object"),
        ({"mutations": [{"type": "set", "key": ["a"], "value": 1, "expire_in": 5}]}, "unknown fields"),
        ({"mutations": [{"type": "set", "key": ["a"]}]}, "needs a 'value'"),
        ({"mutations": [{"type": "set", "key": ["a"], "value": 1, "expireIn": 0}]}, "expireIn"),
        ({"mutations": [{"type": "set", "key": ["a"], "value": 1, "expireIn": "5"}]}, "expireIn"),
        ({"mutations": [{"type": "sum", "key": ["a"], "value": -1}]}, "sum operand"),
        ({"mutations": [{"type": "max", "key": ["a"], "value": {"$u64": str(2**64)}}]}, "KvU64"),
        ({"mutations": [{"type": "min", "key": ["a"], "value": 1.5}]}, "min operand"),
        ({"mutations": [{"type": "delete", "key": [{"$bigint": "x"}]}]}, "bigint"),
        ({"mutations": [{"type": "enqueue"}]}, "needs a 'value'"),
        ({"mutations": [{"type": "enqueue", "value": 1, "delay": -1}]}, "delay"),
        ({"mutations": [{"type": "enqueue", "value": 1, "delay": 30 * 86_400_000 + 1}]}, "delay"),
        ({"mutations": [{"type": "enqueue", "value": 1, "keysIfUndelivered": [["a"]] * 11}]}, "keysIfUndelivered"),
        ({"mutations": [{"type": "enqueue", "value": 1, "keysIfUndelivered": "a"}]}, "keysIfUndelivered"),
        ({"mutations": [{"type": "enqueue", "value": 1, "backoffSchedule": [1] * 11}]}, "backoffSchedule"),
        ({"mutations": [{"type": "enqueue", "value": 1, "backoffSchedule": [3_600_001]}]}, "backoffSchedule"),
        ({"mutations": [{"type": "enqueue", "value": 1, "backoffSchedule": 5}]}, "backoffSchedule"),
        ({"mutations": [{"type": "set", "key": [], "value": 1}]}, "at least one part"),
        ({"mutations": [{"type": "sum", "key": [], "value": 1}]}, "at least one part"),
        ({"checks": [{"key": [], "versionstamp": None}]}, "at least one part"),
        ({"mutations": [{"type": "enqueue", "value": 1, "keysIfUndelivered": [[]]}]}, "at least one part"),
    ],
)
def test_bad_commits_are_400_naming_the_problem(wire: Any, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        commit_from_wire(wire)


def test_oversized_parts_are_413() -> None:
    with pytest.raises(PayloadTooLarge, match="2048"):
        commit_from_wire({"mutations": [{"type": "delete", "key": ["x" * 3000]}]})
    with pytest.raises(PayloadTooLarge, match="65536"):
        commit_from_wire({"mutations": [{"type": "set", "key": ["a"], "value": "x" * 70_000}]})


def test_the_800_kib_commit_limit_counts_keys_and_values() -> None:
    value = "x" * 60_000  # 60,002 bytes of JSON each
    thirteen = [{"type": "set", "key": ["k", str(i)], "value": value} for i in range(13)]
    commit = commit_from_wire({"mutations": thirteen})  # 780 KB: under
    assert commit_size(commit) == sum(60_002 + len(encode_key(("k", str(i)))) for i in range(13))
    fourteen = [*thirteen, {"type": "enqueue", "value": value}]
    with pytest.raises(PayloadTooLarge, match=str(MAX_COMMIT_BYTES)):
        commit_from_wire({"mutations": fourteen})


def test_commits_built_in_code_are_validated_too() -> None:
    with pytest.raises(BadRequest, match="expireIn"):
        validate_commit(AtomicCommit((), (SetMutation(b"\x02a\x00", encode_value(1), -5),)))
    with pytest.raises(BadRequest, match="sum operand"):
        validate_commit(AtomicCommit((), (U64Mutation("sum", b"\x02a\x00", 2**64),)))


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["type", "key", "value", "expireIn", "delay", "keysIfUndelivered", "backoffSchedule", "versionstamp", "$u64"]
)
plausible_documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2**65)
    | st.sampled_from(["set", "delete", "sum", "min", "max", "enqueue", "0" * 20, "a", "$bigint"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(field_names, inner, max_size=5),
    max_leaves=25,
)


@given(
    st.one_of(json_documents, st.fixed_dictionaries({"checks": plausible_documents, "mutations": plausible_documents}))
)
def test_any_json_either_parses_or_is_a_4xx(wire: Any) -> None:
    try:
        commit = commit_from_wire(wire)
    except (BadRequest, PayloadTooLarge):
        return
    assert validate_commit(commit) is commit
