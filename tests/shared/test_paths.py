"""Stream path validation and the Stream-Forked-From path form."""

from __future__ import annotations

import pytest

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.paths import MAX_PATH_BYTES, STREAM_PREFIX, path_from_url_path, url_path, validate_path

VALID = [
    "a",
    "a/b",
    "a/b/c/d",
    "orders-2024_01.log",
    "...",
    "a..b",
    ".hidden",
    "x/.y/z..",
    "with space",
    "caf\u00e9/\u00fcber",
    "\U0001f680",
    "a" * MAX_PATH_BYTES,
    "\u00e9" * (MAX_PATH_BYTES // 2),  # exactly 1024 UTF-8 bytes
    "a?b=c&d",
    "100%",
]

INVALID = [
    "",
    "/",
    "//",
    "/a",
    "a/",
    "a//b",
    ".",
    "..",
    "../x",
    "x/..",
    "a/../b",
    "a/./b",
    "./a",
    "\x00",
    "a\x00b",
    "a\nb",
    "a\r\nb",
    "a\tb",
    "\x1b[31mred",
    "a\x7fb",
    "\x1f",
    "a" * (MAX_PATH_BYTES + 1),
    "\u00e9" * (MAX_PATH_BYTES // 2) + "a",  # 1025 bytes, 513 characters
    "\U0001f680" * (MAX_PATH_BYTES // 4 + 1),
    "a\ud800b",  # lone surrogate: not encodable as UTF-8
]


@pytest.mark.parametrize("path", VALID, ids=repr)
def test_valid_paths_are_returned_unchanged(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize("path", INVALID, ids=lambda p: repr(p)[:40])
def test_invalid_paths_are_bad_requests(path: str) -> None:
    with pytest.raises(BadRequest) as info:
        validate_path(path)
    assert info.value.status == 400


@pytest.mark.parametrize("path", ["a\x85b", "a\x9b31mb", "\x80"], ids=["NEL", "C1-CSI", "PAD"])
def test_c1_control_characters_are_rejected(path: str) -> None:
    # C1 controls (U+0080..U+009F) are Unicode control characters too: U+0085 is a line break
    # for str.splitlines and many log viewers, U+009B is the 8-bit terminal CSI.
    with pytest.raises(BadRequest):
        validate_path(path)


def test_length_limit_counts_bytes_not_characters() -> None:
    assert validate_path("\u00e9" * 512) == "\u00e9" * 512
    with pytest.raises(BadRequest):
        validate_path("\u00e9" * 512 + "x")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("/v1/stream/src", "src"),
        ("/v1/stream/a/b/c", "a/b/c"),
        ("src", "src"),
        ("/src", "src"),
        ("a/b", "a/b"),
    ],
)
def test_forked_from_accepts_full_url_path_or_bare_name(header: str, name: str) -> None:
    assert path_from_url_path(header) == name


@pytest.mark.parametrize("header", ["/v1/stream/", "/v1/stream/../x", "/v1/stream/a//b", "", "/", "/v1/stream/a\x00"])
def test_forked_from_rejects_invalid_names(header: str) -> None:
    with pytest.raises(BadRequest):
        path_from_url_path(header)


@pytest.mark.parametrize("name", ["a", "a/b", "caf\u00e9"])
def test_url_path_round_trip(name: str) -> None:
    assert url_path(name) == STREAM_PREFIX + name
    assert path_from_url_path(url_path(name)) == name
