"""Subscription patterns: `*` matches exactly one path segment, `**` zero or more segments."""

from __future__ import annotations

from functools import lru_cache


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        # Zero segments, or swallow one and try again.
        return _match(rest, path) or (bool(path) and _match(pattern, path[1:]))
    if not path:
        return False
    return (head == "*" or head == path[0]) and _match(rest, path[1:])


@lru_cache(maxsize=1024)
def _segments(text: str) -> tuple[str, ...]:
    return tuple(text.split("/"))


def matches(pattern: str, path: str) -> bool:
    """Whether the stream `path` (relative to the stream root) falls under `pattern`."""
    return _match(_segments(pattern), _segments(path))


def validate_pattern(pattern: str) -> str | None:
    """Why `pattern` is unusable, or None. Wildcards must be whole segments (`a/*`, not `a*`)."""
    if not pattern or pattern.startswith("/") or pattern.endswith("/"):
        return "pattern must be a non-empty relative path without a leading or trailing '/'"
    for segment in pattern.split("/"):
        if not segment:
            return "pattern has an empty segment"
        if ("*" in segment) and segment not in ("*", "**"):
            return "wildcards must be whole segments ('*' or '**')"
    return None
