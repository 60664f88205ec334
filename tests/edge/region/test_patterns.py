"""Path patterns of a regional replica's interest (edge/region/patterns.py): `*`, `**`, `?`, literal dots."""

from __future__ import annotations

import pytest

from plugin_streams.edge.region.patterns import PathPatterns


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["**"], "a/b/c", True),
        (["orders/*"], "orders/eu", True),
        (["orders/*"], "orders/eu/1", False),
        (["orders/**"], "orders/eu/1", True),
        (["orders/**"], "ordersx", False),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["x.y"], "xzy", False),  # the dot is literal
        ([], "anything", False),
        (["one", "two/*"], "two/2", True),
    ],
)
def test_path_patterns(patterns: list[str], path: str, expected: bool) -> None:
    assert PathPatterns(patterns).matches(path) is expected
