"""Versionstamps: Deno's 20 hex characters, minted from change-stream offsets, rising with them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.kv.versionstamps import Versionstamp, parse_versionstamp
from plugin_streams.shared.offsets import Offset

offsets = st.builds(Offset, st.integers(0, 2**32 - 1), st.integers(0, 2**48 - 1))


@given(offsets)
def test_offset_round_trips(offset: Offset) -> None:
    stamp = Versionstamp.from_offset(offset)
    assert stamp.to_offset() == offset
    assert len(str(stamp)) == 20
    assert parse_versionstamp(str(stamp)) == stamp
    assert Versionstamp.from_bytes(stamp.to_bytes()) == stamp


@given(offsets, offsets)
def test_versionstamps_order_as_offsets_do(a: Offset, b: Offset) -> None:
    assert (Versionstamp.from_offset(a) < Versionstamp.from_offset(b)) == (a < b)
    assert (str(Versionstamp.from_offset(a)) < str(Versionstamp.from_offset(b))) == (a < b)


def test_layout_is_generation_then_position() -> None:
    assert str(Versionstamp.from_offset(Offset(1, 2))) == "00000001000000000002"
    assert parse_versionstamp("0000000100000000000A") == Versionstamp.from_offset(Offset(1, 10))


def test_offsets_beyond_the_layout_are_refused() -> None:
    with pytest.raises(ValueError, match="generation"):
        Versionstamp.from_offset(Offset(2**32, 0))
    with pytest.raises(ValueError, match="position"):
        Versionstamp.from_offset(Offset(1, 2**48))


@pytest.mark.parametrize("bad", ["", "0" * 19, "0" * 21, "g" * 20, 12, None, " " + "0" * 19])
def test_bad_versionstamps_are_400(bad: object) -> None:
    with pytest.raises(BadRequest, match="versionstamp"):
        parse_versionstamp(bad)
