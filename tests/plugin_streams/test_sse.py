"""The one SSE parser (plugin_streams/sse.py) on WHATWG's edge cases, and that it is the only one.

The client and the servers parse with this same class (shared.sse re-exports it), so these
cases hold for the client's tail and the edge's upstream follower alike.
"""

from __future__ import annotations

import pytest

from plugin_streams import sse as client_sse
from plugin_streams.shared import sse
from plugin_streams.sse import Event, Parser


def feed_in(wire: bytes, size: int) -> list[Event]:
    parser = Parser()
    return [event for i in range(0, len(wire), size) for event in parser.feed(wire[i : i + size])]


def test_the_servers_parse_with_the_clients_parser() -> None:
    assert sse.Parser is client_sse.Parser
    assert sse.Event is client_sse.Event


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_invalid_utf8_becomes_replacement_characters_not_an_error(size: int) -> None:
    # WHATWG decodes the stream with "UTF-8 decode": each invalid sequence is U+FFFD.
    wire = b"data:a\xffb\xc3(\xed\xa0\x80z\n\nid:\xfe\ndata:next\n\n"
    events = feed_in(wire, size)
    assert events == [
        Event("message", "a\ufffdb\ufffd(\ufffd\ufffd\ufffdz"),
        Event("message", "next", "\ufffd"),
    ]


def test_a_character_cut_at_the_end_of_the_stream_is_not_an_event() -> None:
    parser = Parser()
    assert parser.feed(b"data:\xe2\x82") == []  # the rest of the character may still come
    assert parser.feed(b"\xac\n\n") == [Event("message", "\u20ac")]


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_one_leading_byte_order_mark_is_skipped(size: int) -> None:
    wire = b"\xef\xbb\xbfdata:x\n\n\xef\xbb\xbfdata:y\n\n"
    # Only the stream's first BOM is dropped; a later one makes the line an unknown field.
    assert feed_in(wire, size) == [Event("message", "x")]


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"], ids=repr)
def test_empty_data_lines_comments_and_multi_line_data(ending: bytes) -> None:
    lines = [b": comment", b"data:", b"data", b"data: two", b":", b"data:  three", b"", b"data:", b"", b":end"]
    wire = ending.join(lines)
    for size in (1, 2, 1000):
        assert feed_in(wire, size) == [Event("message", "\n\ntwo\n three"), Event("message", "")], size


def test_an_event_without_data_is_dropped_but_its_id_persists() -> None:
    assert Parser().feed(b"event: x\nid: 7\n\ndata:y\n\n") == [Event("message", "y", "7")]


def test_an_id_containing_nul_is_ignored() -> None:
    events = Parser().feed(b"id:1\ndata:a\n\nid:2\x00\ndata:b\n\n")
    assert events == [Event("message", "a", "1"), Event("message", "b", "1")]


def test_unknown_fields_and_lines_without_a_colon() -> None:
    assert Parser().feed(b"retry:10\nfoo:bar\nevent\nevent:e\ndata:x\n\n") == [Event("e", "x")]


def test_sse_parser_across_chunks_and_line_endings() -> None:
    wire = b"retry:1000\n\n: comment\nid:1\ndata:a\ndata: b\n\nid:2\r\ndata:  c\r\n\r\nevent: closed\rdata:{}\r\r\n"
    for size in (1, 2, 3, 7, len(wire)):
        parser = Parser()
        events = []
        for i in range(0, len(wire), size):
            events += parser.feed(wire[i : i + size])
        assert events == [Event("message", "a\nb", "1"), Event("message", " c", "2"), Event("closed", "{}", "2")]


def test_sse_parser_never_emits_a_cut_event() -> None:
    parser = Parser()
    assert parser.feed("id:1\ndata:h\u00e9".encode()[:-1]) == []  # cut inside a character, too
    assert Parser().feed(b"id:1\ndata:x\n") == []
