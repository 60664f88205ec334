"""SSE framing (PROTOCOL.md §5.8, notes §1.5 "SSE Mode"): encoder → Parser round trips."""

from __future__ import annotations

import base64
import json
import re

import pytest

from plugin_streams.shared.sse import KEEP_ALIVE, Event, Parser, control_payload, encode_control, encode_data

CONTROL_RE = re.compile(rb"event: control\s*\ndata:({[^}]+})")


def parse_all(data: bytes) -> list[Event]:
    return Parser().feed(data)


def normalized(text: str) -> str:
    """What survives SSE: every line break (CRLF, CR, LF) becomes LF."""
    return re.sub(r"\r\n|\r", "\n", text)


TEXT_PAYLOADS = [
    "hello",
    "",
    "line1\nline2",
    "a\r\nb",
    "a\rb",
    "a\n\rb",
    "\r\n\r\n",
    "\n",
    "trailing\n",
    "\nleading",
    " leading space",
    "  two leading spaces",
    "line\n indented\n\ttabbed",
    " ",
    "event: x",
    "x\nevent: injected\ndata: fake\n\nid: 9\nretry: 1",
    "x\r\n\r\nevent: control\r\ndata: {}",
    ":not a comment",
    "a\n:b",
    "data:data:",
    '{"k":"v"}',
    "caf\u00e9 \U0001f680",
    "\u2028\u0085 not SSE line breaks",
]


@pytest.mark.parametrize("payload", TEXT_PAYLOADS, ids=repr)
def test_text_round_trip_is_one_data_event(payload: str) -> None:
    events = parse_all(encode_data(payload.encode(), base64_mode=False))
    assert events == [Event("data", normalized(payload))]


@pytest.mark.parametrize("payload", TEXT_PAYLOADS, ids=repr)
def test_data_then_control_pair(payload: str) -> None:
    control = control_payload("0000000000000001_0000000000000005", cursor=1000, up_to_date=True, closed=False)
    wire = encode_data(payload.encode(), base64_mode=False) + encode_control(control)
    events = parse_all(wire)
    assert [e.event for e in events] == ["data", "control"]  # injected text made no extra event
    assert events[0].data == normalized(payload)
    assert json.loads(events[1].data) == control


def test_literal_framing_the_suite_checks() -> None:
    assert encode_data(b"line1", base64_mode=False) == b"event: data\ndata:line1\n\n"
    assert encode_data(b"a\r\nb\rc", base64_mode=False) == b"event: data\ndata:a\ndata:b\ndata:c\n\n"
    # A line starting with a space gets one extra, which WHATWG parsers strip.
    assert encode_data(b" x", base64_mode=False) == b"event: data\ndata:  x\n\n"
    assert b"\r" not in encode_data(b"a\r\r\n\rb", base64_mode=False)


@pytest.mark.parametrize(
    "payload", [b"", b"\x00", b"\x00\x01\x02\xff\xfe", b"\n\r\n", bytes(range(256)), b"x" * 1001], ids=len
)
def test_base64_round_trip(payload: bytes) -> None:
    wire = encode_data(payload, base64_mode=True)
    (event,) = parse_all(wire)
    assert event.event == "data"
    text = event.data.replace("\n", "").replace("\r", "")
    assert len(text) % 4 == 0
    assert base64.b64decode(text, validate=True) == payload
    if not payload:
        assert event.data == ""


def test_control_fields_open() -> None:
    control = control_payload("0000000000000001_0000000000000005", cursor=1000, up_to_date=True, closed=False)
    assert control == {
        "streamNextOffset": "0000000000000001_0000000000000005",
        "streamCursor": "1000",
        "upToDate": True,
    }
    behind = control_payload("0000000000000001_0000000000000005", cursor=7, up_to_date=False, closed=False)
    assert behind == {"streamNextOffset": "0000000000000001_0000000000000005", "streamCursor": "7"}


def test_control_fields_closed_have_no_cursor() -> None:
    for up_to_date in (True, False):
        control = control_payload("0000000000000001_0000000000000009", cursor=1000, up_to_date=up_to_date, closed=True)
        assert control == {
            "streamNextOffset": "0000000000000001_0000000000000009",
            "streamClosed": True,
            "upToDate": True,
        }


def test_control_event_matches_the_suites_regex() -> None:
    control = control_payload("0000000000000001_0000000000000005", cursor=1000, up_to_date=True, closed=False)
    wire = encode_control(control)
    match = CONTROL_RE.search(wire)
    assert match is not None
    payload = json.loads(match.group(1))
    assert payload == control
    assert isinstance(payload["streamNextOffset"], str)
    assert re.fullmatch(r"\d+", payload["streamCursor"])
    assert wire.endswith(b"\n\n") and b"\r" not in wire


# -- the parser ------------------------------------------------------------------------------

STREAM = (
    KEEP_ALIVE
    + encode_data(b"first\nsecond", base64_mode=False)
    + encode_control({"streamNextOffset": "0000000000000001_0000000000000012", "streamCursor": "5"})
    + KEEP_ALIVE
    + b"event: data\r\ndata:crlf\r\ndata:  spaced\r\n\r\n"
    + b"event: data\rdata:cr only\r\r"
    + b": a comment\n"
    + b"id: 42\nevent: control\ndata:{}\n\n"
    + b"data:no event name\n\n"
    + encode_data(b"last", base64_mode=True)
)
EXPECTED = [
    Event("data", "first\nsecond"),
    Event("control", '{"streamNextOffset":"0000000000000001_0000000000000012","streamCursor":"5"}'),
    Event("data", "crlf\n spaced"),
    Event("data", "cr only"),
    Event("control", "{}", "42"),
    Event("message", "no event name", "42"),  # the last event id persists
    Event("data", base64.b64encode(b"last").decode(), "42"),
]


def test_parser_whole_stream() -> None:
    assert parse_all(STREAM) == EXPECTED


def test_parser_split_anywhere_in_two() -> None:
    for cut in range(len(STREAM) + 1):
        parser = Parser()
        assert parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) == EXPECTED, cut


def test_parser_byte_by_byte() -> None:
    parser = Parser()
    events = [event for i in range(len(STREAM)) for event in parser.feed(STREAM[i : i + 1])]
    assert events == EXPECTED


def test_parser_split_between_cr_and_lf() -> None:
    parser = Parser()
    assert parser.feed(b"event: data\r") == []
    assert parser.feed(b"\ndata:x\r") == []
    assert parser.feed(b"\n\r") == []
    # "\r\n\r" then "\n": one blank line (CRLF), not two (CR, LF)
    assert parser.feed(b"\n") == [Event("data", "x")]
    assert parser.feed(b"data:y\n\n") == [Event("message", "y")]


def test_parser_lone_cr_terminates_once_more_data_arrives() -> None:
    parser = Parser()
    assert parser.feed(b"data:x\r\r") == []  # the last CR may still be half of a CRLF
    assert parser.feed(b"data:y") == [Event("message", "x")]


def test_keep_alive_alone_yields_nothing() -> None:
    parser = Parser()
    assert parser.feed(KEEP_ALIVE * 5) == []
    assert parser.feed(b":\n") == []


def test_parser_multibyte_utf8_split_across_chunks() -> None:
    wire = encode_data("caf\u00e9 \U0001f680 \u4e2d".encode(), base64_mode=False)
    for cut in range(len(wire) + 1):
        parser = Parser()
        assert parser.feed(wire[:cut]) + parser.feed(wire[cut:]) == [Event("data", "caf\u00e9 \U0001f680 \u4e2d")], cut


def test_parser_does_not_dispatch_an_event_without_data() -> None:
    # WHATWG: "If the data buffer is an empty string, set the data buffer and the event type
    # buffer to the empty string and return" -- an `event:` line alone dispatches nothing.
    parser = Parser()
    assert parser.feed(b"event: x\n\n") == []
    assert parser.feed(b"data:y\n\n") == [Event("message", "y")]
