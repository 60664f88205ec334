"""Pure parts of the REST API: body and query parsing, cursors, names, SSE message framing."""

from __future__ import annotations

import pytest

from plugin_streams.origin.rest.bodies import decode_cursor, encode_cursor, parse_create_body, parse_limit
from plugin_streams.origin.rest.routes import split_name
from plugin_streams.origin.rest.tail import closed_event, encode_message
from plugin_streams.shared import sse
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.parse import Retention


def test_create_body_defaults_and_fields() -> None:
    body = parse_create_body(b'{"name": "a/b"}')
    assert body.name == "a/b"
    assert body.request.content_type == "application/json"
    assert body.request.retention is None and body.request.max_size is None
    full = parse_create_body(
        b'{"name": "x", "content_type": "text/plain", "retention": {"max_bytes": 10}, "max_size": 5, "ttl_seconds": 0}'
    )
    assert full.request.retention == Retention(None, 10)
    assert (full.request.max_size, full.request.ttl_seconds, full.request.content_type) == (5, 0, "text/plain")
    assert parse_create_body(b'{"name": "x", "retention": {}}').request.retention is None


def test_cursor_round_trip_and_limits() -> None:
    for name in ("a", "a/b/c", "\u00e9\u00e8", "x" * 300):
        assert decode_cursor(encode_cursor(name)) == name
    for bad in ("!!", "a", "////"):
        with pytest.raises(BadRequest):
            decode_cursor(bad)
    assert parse_limit({}, 7, 10) == 7
    assert parse_limit({"limit": "10"}, 7, 10) == 10
    with pytest.raises(BadRequest):
        parse_limit({"limit": "11"}, 7, 10)


def test_split_name() -> None:
    assert split_name("a") == ("a", None)
    assert split_name("a/b/read") == ("a/b", "read")
    assert split_name("a%2Fread") == ("a/read", None)
    assert split_name("a%2Fread/tail") == ("a/read", "tail")
    assert split_name("read") == ("read", None)
    with pytest.raises(BadRequest):
        split_name("a//b")


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
