"""origin.rest.bodies: create bodies, listing cursors and limits."""

from __future__ import annotations

import pytest

from plugin_streams.origin.rest.bodies import decode_cursor, encode_cursor, parse_create_body
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.parse import Retention
from plugin_streams.shared.rest_pages import parse_limit


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
