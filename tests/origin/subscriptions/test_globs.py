from __future__ import annotations

import pytest

from plugin_streams.origin.subscriptions.globs import matches, validate_pattern


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("events/*", "events/a", True),
        ("events/*", "events/a/b", False),  # * is exactly one segment
        ("events/*", "events", False),
        ("events/**", "events", True),  # ** may be zero segments
        ("events/**", "events/a/b/c", True),
        ("**/orders", "eu/shop/orders", True),
        ("**/orders", "orders", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**/z", "a/b/c/y", False),
        ("a/*/c", "a/b/c", True),
        ("a/*/c", "a/b/x/c", False),
        ("exact/path", "exact/path", True),
        ("exact/path", "exact/paths", False),
    ],
)
def test_glob_matching(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize("pattern", ["", "/events/*", "events/", "events//a", "events/a*", "ev*ents"])
def test_bad_patterns_are_named(pattern: str) -> None:
    assert validate_pattern(pattern) is not None


@pytest.mark.parametrize("pattern", ["events/*", "**", "a/**/b", "plain"])
def test_good_patterns(pattern: str) -> None:
    assert validate_pattern(pattern) is None
