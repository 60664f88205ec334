"""origin.rest.tail: the REST tail's SSE framing (through shared.sse)."""

from __future__ import annotations

import pytest

from plugin_streams.origin.rest.tail import closed_event, encode_message
from plugin_streams.shared import sse


@pytest.mark.parametrize("data", ["plain", "two\nlines", "cr\rlf\r\n", " leading space", "", "data: x\n\nid: y"])
def test_encode_message_round_trips_through_an_sse_parser(data: str) -> None:
    [event] = sse.Parser().feed(encode_message("0000000000000001_0000000000000005", data).encode())
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert (event.event, event.id, event.data) == ("message", "0000000000000001_0000000000000005", expected)


def test_tail_framing_is_byte_for_byte_what_it_was() -> None:
    # The REST tail's events come from shared.sse now; its bytes on the wire must not change.
    assert encode_message("7", "a\r\nb") == "id:7\ndata:a\ndata:b\n\n"
    assert encode_message("7", " x") == "id:7\ndata:  x\n\n"
    assert closed_event("9") == b'event: closed\ndata:{"next_offset": "9"}\n\n'
