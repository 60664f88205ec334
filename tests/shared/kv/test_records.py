"""Commit records: a deterministic encoding that decodes to the same commit, and refuses damage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared.kv.commits import AtomicCommit, DeleteMutation, Enqueue, Mutation, SetMutation, U64Mutation
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.records import CommitRecord, CorruptRecord, decode_record, encode_record
from plugin_streams.shared.kv.values import encode_value
from tests.shared.kv.strategies import keys

encoded_keys = keys.map(encode_key)
stored_values = st.one_of(st.binary(max_size=10).map(encode_value), st.integers().map(encode_value))
mutations: st.SearchStrategy[Mutation] = st.one_of(
    st.builds(SetMutation, encoded_keys, stored_values, st.none() | st.integers(1, 2**53 - 1)),
    st.builds(DeleteMutation, encoded_keys),
    st.builds(U64Mutation, st.sampled_from(["sum", "min", "max"]), encoded_keys, st.integers(0, 2**64 - 1)),
    st.builds(
        Enqueue,
        stored_values,
        st.integers(0, 30 * 86_400_000),
        st.lists(encoded_keys, max_size=3).map(tuple),
        st.none() | st.lists(st.integers(0, 3_600_000), max_size=10).map(tuple),
    ),
)
commits = st.builds(AtomicCommit, st.just(()), st.lists(mutations, max_size=8).map(tuple))


@given(commits, st.integers(0, 2**63))
def test_decode_inverts_encode(commit: AtomicCommit, at_ms: int) -> None:
    record = encode_record(commit, at_ms)
    assert decode_record(record) == CommitRecord(at_ms, commit.mutations)
    assert encode_record(commit, at_ms) == record  # deterministic


def test_a_known_record() -> None:
    commit = AtomicCommit((), (DeleteMutation(encode_key(("a",))), Enqueue(encode_value(1), 0, (), ())))
    # version, time 300 (varint ac 02), 2 mutations, delete "a", enqueue value "1", no delay, no keys, empty backoff.
    assert encode_record(commit, 300).hex() == "01ac020202" + "03026100" + "06" + "02" + "0131" + "00" + "00" + "01"


@given(commits, st.data())
def test_truncated_or_extended_records_are_corrupt(commit: AtomicCommit, data: st.DataObject) -> None:
    record = encode_record(commit, 1)
    cut = data.draw(st.integers(0, len(record) - 1))
    with pytest.raises(CorruptRecord):
        decode_record(record[:cut])
    with pytest.raises(CorruptRecord):
        decode_record(record + b"\x00")


@pytest.mark.parametrize("data", [b"\x02\x00\x00", b"\x01\x00\x01\x09", b"\x01" + b"\xff" * 12])
def test_unknown_versions_codes_and_overlong_varints_are_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptRecord):
        decode_record(data)
