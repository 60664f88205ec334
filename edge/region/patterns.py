"""Which stream paths a region replicates eagerly: globs over paths (`--replicate`, repeatable).

`**` matches any run of characters (slashes included), `*` any run within one path segment,
`?` one character other than `/`. So `**` is every stream, `orders/*` the direct children of
`orders/`, `orders/**` everything below it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def _translate(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class PathPatterns:
    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(f"(?:{_translate(p)})" for p in self.patterns)
        self._regex = re.compile(rf"\A(?:{joined})\Z", re.DOTALL) if self.patterns else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def matches(self, path: str) -> bool:
        return self._regex is not None and self._regex.match(path) is not None
