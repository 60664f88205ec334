"""Varints and blobs: unsigned 64-bit LEB128 round trips, and the reader names running out of data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared.kv.bytes_io import ByteReader, write_blob, write_varint


class Damaged(ValueError):
    pass


@given(st.integers(0, 2**64 - 1))
def test_varints_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(out, value)
    reader = ByteReader(bytes(out), Damaged)
    assert reader.varint() == value
    assert reader.at_end()


def test_varints_outside_64_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        write_varint(bytearray(), 2**64)
    with pytest.raises(ValueError, match="64-bit"):
        write_varint(bytearray(), -1)


def test_known_varints() -> None:
    out = bytearray()
    for value in (0, 127, 128, 300):
        write_varint(out, value)
    assert out.hex() == "007f8001ac02"


@given(st.lists(st.binary(max_size=300), max_size=5))
def test_blobs_round_trip_and_running_out_raises_the_callers_error(blobs: list[bytes]) -> None:
    out = bytearray()
    for blob in blobs:
        write_blob(out, blob)
    reader = ByteReader(bytes(out), Damaged)
    assert [reader.blob() for _ in blobs] == blobs
    assert reader.at_end()
    with pytest.raises(Damaged, match="ends early"):
        reader.byte()


def test_an_overlong_varint_raises_the_callers_error() -> None:
    with pytest.raises(Damaged, match="overlong"):
        ByteReader(b"\xff" * 11, Damaged).varint()
