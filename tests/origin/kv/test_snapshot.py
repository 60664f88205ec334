"""Snapshots: a loaded index answers as the saved one; damage of any kind is refused, never loaded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.origin.kv.index import KvIndex, ListSelector
from plugin_streams.origin.kv.snapshot import CorruptSnapshot, encode_snapshot, load_snapshot
from plugin_streams.shared.kv.commits import AtomicCommit, SetMutation, U64Mutation
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.records import decode_record, encode_record
from plugin_streams.shared.kv.values import encode_value
from plugin_streams.shared.kv.versionstamps import Versionstamp


def _index() -> KvIndex:
    index = KvIndex()
    mutations = (
        SetMutation(encode_key(("a", 1)), encode_value({"x": [1, 2]})),
        SetMutation(encode_key(("a", 2)), encode_value(b"\x00raw"), 50),
        U64Mutation("sum", encode_key(("n",)), 9),
    )
    index.apply(decode_record(encode_record(AtomicCommit((), mutations), 1000)), Versionstamp(77))
    return index


def test_a_loaded_snapshot_answers_as_the_saved_index() -> None:
    index = _index()
    loaded = load_snapshot(encode_snapshot(index))
    assert loaded.entries() == index.entries()
    assert (loaded.last_versionstamp, loaded.clock_ms) == (Versionstamp(77), 1000)
    assert loaded.get(encode_key(("a", 2)), 1049) is not None
    assert loaded.get(encode_key(("a", 2)), 1050) is None
    assert loaded.expired_keys(2000, 10) == [encode_key(("a", 2))]
    page = loaded.list(ListSelector(prefix=encode_key(("a",))), limit=1)
    assert page.cursor is not None
    # Later records apply on top of it exactly as on the original.
    more = decode_record(encode_record(AtomicCommit((), (U64Mutation("sum", encode_key(("n",)), 1),)), 1001))
    assert index.apply(more, Versionstamp(78)) == loaded.apply(more, Versionstamp(78))
    assert loaded.entries() == index.entries()


def test_an_empty_index_round_trips() -> None:
    loaded = load_snapshot(encode_snapshot(KvIndex()))
    assert (loaded.entries(), loaded.last_versionstamp, loaded.clock_ms) == ([], None, 0)


@given(st.data())
def test_any_flipped_or_cut_byte_is_refused(data: st.DataObject) -> None:
    snapshot = encode_snapshot(_index())
    at = data.draw(st.integers(0, len(snapshot) - 1))
    flipped = bytearray(snapshot)
    flipped[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptSnapshot):
        load_snapshot(bytes(flipped))
    with pytest.raises(CorruptSnapshot):
        load_snapshot(snapshot[:at])


def test_a_snapshot_of_another_format_is_refused() -> None:
    import hashlib

    body = bytearray(encode_snapshot(KvIndex())[:-16])
    body[8] = 0x02
    with pytest.raises(CorruptSnapshot, match="format 2"):
        load_snapshot(bytes(body) + hashlib.blake2b(body, digest_size=16).digest())
