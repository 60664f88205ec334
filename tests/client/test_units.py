"""Pure parts of the client: the SSE parser, backoff, URL handling and error mapping."""

from __future__ import annotations

import random

import pytest

from plugin_streams import errors
from plugin_streams._backoff import Backoff
from plugin_streams._sse import Event, Parser
from plugin_streams._transport import base_urls


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


def test_backoff_is_jittered_capped_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next() <= 0.1


def test_base_urls() -> None:
    assert base_urls("http://a:1/, http://b:2/streams/api/v1") == [
        "http://a:1/streams/api/v1",
        "http://b:2/streams/api/v1",
    ]
    assert base_urls(["http://a"]) == ["http://a/streams/api/v1"]
    with pytest.raises(ValueError):
        base_urls(" , ")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", errors.BadRequest),
        (401, "unauthorized", errors.Unauthorized),
        (403, "forbidden", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "conflict", errors.Conflict),
        (409, "stream_closed", errors.StreamClosed),
        (410, "gone", errors.Gone),
        (413, "payload_too_large", errors.PayloadTooLarge),
        (503, "unavailable", errors.Unavailable),
    ],
)
def test_error_mapping(status: int, code: str, cls: type[errors.StreamsError]) -> None:
    body = f'{{"error": {{"code": "{code}", "message": "m", "earliest_offset": "x"}}}}'.encode()
    error = errors.error_from(status, body)
    assert type(error) is cls and error.code == code and error.status == status
    assert error.details == {"earliest_offset": "x"}
    assert errors.error_from(502, b"<html>bad gateway</html>").message == "<html>bad gateway</html>"
