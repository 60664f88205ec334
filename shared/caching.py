"""Cache-Control and ETag rules by response kind (PROTOCOL.md §10).

- A catch-up response to an explicit offset that stopped at a chunk boundary before the tail
  can never change: cached for a year and marked immutable.
- A response that reaches the tail, or answers `offset=-1`, can change: short-lived, so a CDN
  absorbs bursts without hiding new data for long.
- A long-poll 200 is keyed by offset and cursor: cacheable for about one cursor interval.
- Long-poll 204, `offset=now`, HEAD and every error: `no-store`. SSE: `no-cache`.
"""

from __future__ import annotations

from typing import Final

IMMUTABLE: Final = "max-age=31536000, immutable"
TAIL: Final = "max-age=1, stale-while-revalidate=1"
LONG_POLL: Final = "max-age=20"
NO_STORE: Final = "no-store"
SSE: Final = "no-cache"


def catch_up(*, complete: bool, explicit_offset: bool, public: bool = True) -> str:
    scope = "public" if public else "private"
    return f"{scope}, {IMMUTABLE if complete and explicit_offset else TAIL}"


def long_poll(*, public: bool = True) -> str:
    return f"{'public' if public else 'private'}, {LONG_POLL}"


def etag(start: str, end: str, *, closed: bool) -> str:
    """Strong ETag naming the byte range; it changes when the stream closes at that range."""
    return f'"{start}:{end}{":c" if closed else ""}"'


def if_none_match(header: str | None, current: str) -> bool:
    """True when `If-None-Match` names `current` (weak forms and lists accepted, as CDNs send)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == current:
            return True
    return False
