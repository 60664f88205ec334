"""REST pages as origin and edge both render them: parameters, headers, bodies and SSE framing."""

from __future__ import annotations

import json

import pytest

from plugin_streams.shared import jsonmode, sse
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.offsets import NOW, START, Offset
from plugin_streams.shared.rest_pages import (
    Encoding,
    data_json,
    encoding_of,
    json_body,
    not_modified_headers,
    page_headers,
    parse_limit,
    requested_after,
    sse_closed,
    sse_data,
    sse_message,
    wants_raw,
)

A = "0000000000000001_0000000000000005"
B = "0000000000000001_0000000000000009"


def test_parameters() -> None:
    assert parse_limit({}, 7, 10) == 7
    assert parse_limit({"limit": "10"}, 7, 10) == 10
    for bad in ("0", "11", "-1", "1.5", "²", "x"):
        with pytest.raises(BadRequest):
            parse_limit({"limit": bad}, 7, 10)
    assert requested_after(None) is START
    assert requested_after("now") is NOW
    assert requested_after(A) == Offset(1, 5)
    assert wants_raw({"format": "raw"}, "")
    assert wants_raw({}, "application/octet-stream")
    assert not wants_raw({}, "application/octet-stream, application/json")
    with pytest.raises(BadRequest):
        wants_raw({"format": "xml"}, "")


def test_encodings_follow_the_content_type() -> None:
    assert encoding_of("application/json; charset=utf-8") is Encoding.JSON
    assert encoding_of("text/plain") is Encoding.TEXT
    assert encoding_of("application/octet-stream") is Encoding.BASE64
    assert data_json(b'{"a":1}', Encoding.JSON) == b'{"a":1}'
    assert json.loads(data_json("é\n".encode(), Encoding.TEXT)) == "é\n"
    assert json.loads(data_json(b"\x00\xff", Encoding.BASE64)) == "AP8="
    assert sse_data(b"\x00\xff", Encoding.BASE64) == "AP8="


def test_a_json_page_body() -> None:
    body = json_body([(A, b"1"), (B, b'"x"')], next_offset=B, up_to_date=True, closed=False, encoding=Encoding.JSON)
    assert json.loads(body) == {
        "messages": [{"offset": A, "data": 1}, {"offset": B, "data": "x"}],
        "next_offset": B,
        "up_to_date": True,
        "closed": False,
        "encoding": "json",
    }
    empty = json_body([], next_offset=A, up_to_date=True, closed=True, encoding=Encoding.TEXT)
    assert json.loads(empty)["messages"] == []


def test_page_headers_name_the_range_and_the_next_page() -> None:
    complete = page_headers(
        start=A,
        next_offset=B,
        cache_control="public, max-age=60",
        raw=False,
        up_to_date=False,
        closed=False,
        path="/streams/api/v1/streams/s/read",
        query={"after": A, "limit": "2"},
    )
    assert complete["Stream-Start-Offset"] == A
    assert complete["Stream-Next-Offset"] == B
    assert complete["Vary"] == "Accept"
    assert complete["Link"] == f'</streams/api/v1/streams/s/read?limit=2&after={B}>; rel="next"'
    assert "Stream-Up-To-Date" not in complete
    raw = page_headers(
        start=A, next_offset=B, cache_control="x", raw=True, up_to_date=True, closed=True, path="/p", query={}
    )
    assert raw["ETag"] != complete["ETag"]  # one range, two representations
    assert raw["Stream-Up-To-Date"] == raw["Stream-Closed"] == "true"
    assert "Link" not in raw
    assert set(not_modified_headers(raw)) == {"ETag", "Cache-Control", "Vary"}


@pytest.mark.parametrize("data", ["plain", "two\nlines", "cr\rlf\r\n", " leading space", "", "data: x\n\nid: y"])
def test_a_message_event_round_trips_through_an_sse_parser(data: str) -> None:
    [event] = sse.Parser().feed(sse_message(A, data).encode())
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert (event.event, event.id, event.data) == ("message", A, expected)


def test_tail_framing_is_byte_for_byte_what_it_was() -> None:
    assert sse_message("7", "a\r\nb") == "id:7\ndata:a\ndata:b\n\n"
    assert sse_message("7", " x") == "id:7\ndata:  x\n\n"
    assert sse_closed("9") == b'event: closed\ndata:{"next_offset": "9"}\n\n'


@pytest.mark.parametrize("value", [1, 0.1, 2**70, 1e300, "é\u4e2d", "\ud800", {"b": [1, {"c": None}], "a": True}])
def test_a_stored_json_value_survives_a_parse_and_compact_again(value: object) -> None:
    # An edge re-frames messages it parsed from a page: the bytes must be the stored ones.
    stored = jsonmode.compact(value)
    assert jsonmode.compact(json.loads(stored)) == stored
