"""The byte writer and reader under the encodings."""

from __future__ import annotations

import pytest

from plugin_streams.origin.kv.queues.wire import CorruptEncoding, Reader, Writer


def test_values_read_back_in_order() -> None:
    out = Writer()
    out.u8(7)
    out.i64(-3)
    out.optional_text(None)
    out.optional_text("x")
    out.texts(("a", "bé"))
    out.raws((b"\x00",))
    source = Reader(out.getvalue())
    assert (source.u8(), source.i64(), source.optional_text(), source.optional_text()) == (7, -3, None, "x")
    assert (source.texts(), source.raws()) == (("a", "bé"), (b"\x00",))
    source.end()


def test_a_length_past_the_end_a_bad_flag_and_bad_utf8_are_refused() -> None:
    with pytest.raises(CorruptEncoding, match="truncated"):
        Reader(b"\x00\x00\x00\x09abc").raw()
    with pytest.raises(CorruptEncoding, match="flag"):
        Reader(b"\x02").flag()
    with pytest.raises(CorruptEncoding, match="UTF-8"):
        Reader(b"\x00\x00\x00\x01\xff").text()
