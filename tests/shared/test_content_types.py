"""Content types (PROTOCOL.md §9, notes §1.4): validation, matching, JSON mode, SSE encoding."""

from __future__ import annotations

import pytest

from plugin_streams.shared.content_types import (
    MAX_CONTENT_TYPE_LENGTH,
    is_json,
    media_type,
    same,
    sse_is_base64,
    validate,
)
from plugin_streams.shared.errors import BadRequest


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("text/plain", "text/plain"),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", "application/json; charset=utf-8"),
        ("TEXT/PLAIN", "TEXT/PLAIN"),
        ("  text/plain  ", "text/plain"),
        ("application/vnd.api+json", "application/vnd.api+json"),
        ("application/x-protobuf", "application/x-protobuf"),
        ("text/event-stream", "text/event-stream"),
        ("multipart/mixed; boundary=x", "multipart/mixed; boundary=x"),
    ],
)
def test_valid_content_types_are_kept_exactly(value: str, kept: str) -> None:
    assert validate(value) == kept


@pytest.mark.parametrize(
    "value",
    ["", " ", "text", "text/", "/plain", "text plain", "text/pla in", "text//plain", "te(xt)/plain", "text/plain/x"],
    ids=repr,
)
def test_invalid_content_types(value: str) -> None:
    with pytest.raises(BadRequest):
        validate(value)


def test_length_limit() -> None:
    value = "application/" + "x" * (MAX_CONTENT_TYPE_LENGTH - len("application/"))
    assert validate(value) == value
    with pytest.raises(BadRequest):
        validate(value + "x")


@pytest.mark.parametrize(
    ("value", "media"),
    [
        ("text/plain", "text/plain"),
        ("TEXT/Plain; charset=UTF-8", "text/plain"),
        (" application/json ;charset=utf-8", "application/json"),
    ],
)
def test_media_type(value: str, media: str) -> None:
    assert media_type(value) == media


def test_same_ignores_case_and_parameters() -> None:
    assert same("text/plain", "TEXT/PLAIN")
    assert same("application/json", "application/json; charset=utf-8")
    assert not same("text/plain", "text/html")
    assert not same("application/json", "application/ndjson")


@pytest.mark.parametrize(
    ("value", "json_mode"),
    [
        ("application/json", True),
        ("APPLICATION/JSON", True),
        ("application/json; charset=utf-8", True),
        ("application/ndjson", False),
        ("application/vnd.api+json", False),
        ("text/json", False),
        ("application/json-seq", False),
    ],
)
def test_is_json(value: str, json_mode: bool) -> None:
    assert is_json(value) is json_mode


@pytest.mark.parametrize(
    ("value", "base64"),
    [
        ("text/plain", False),
        ("text/html; charset=utf-8", False),
        ("TEXT/CSV", False),
        ("application/json", False),
        ("application/json; charset=utf-8", False),
        ("application/octet-stream", True),
        ("application/x-protobuf", True),
        ("image/png", True),
        ("application/ndjson", True),
        ("application/vnd.api+json", True),
    ],
)
def test_sse_base64_for_all_but_text_and_json(value: str, base64: bool) -> None:
    assert sse_is_base64(value) is base64
