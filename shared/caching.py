"""Cache-Control, ETag and surrogate keys by response kind (PROTOCOL.md §10).

- A catch-up response to an explicit offset that stopped at a chunk boundary before the tail
  can never change: cached for a year and marked immutable.
- A response that reaches the tail, or answers `offset=-1`, can change: short-lived, so a CDN
  absorbs bursts without hiding new data for long.
- A long-poll 200 is keyed by offset and cursor: cacheable for about one cursor interval.
- Long-poll 204, `offset=now`, HEAD and every error: `no-store`. SSE: `no-cache`.
- `public` only for streams anyone may read (or reached through a signed URL, whose copies must
  not outlive the signature); `private` otherwise.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

YEAR: Final = 31_536_000
TAIL_MAX_AGE: Final = 1
LONG_POLL_MAX_AGE: Final = 20  # one cursor interval
NO_STORE: Final = "no-store"
SSE: Final = "no-cache"
MAX_SURROGATE_KEY: Final = 200


@dataclass(frozen=True, slots=True)
class Scope:
    public: bool = True
    max_age_cap: int | None = None  # seconds left on a signed URL


PUBLIC: Final = Scope()


def _directive(scope: Scope, max_age: int, extra: str = "") -> str:
    if scope.max_age_cap is not None:
        max_age = max(0, min(max_age, scope.max_age_cap))
    head = "public" if scope.public else "private"
    return f"{head}, max-age={max_age}{extra}"


def catch_up(scope: Scope, *, complete: bool, explicit_offset: bool) -> str:
    if complete and explicit_offset:
        return _directive(scope, YEAR, ", immutable")
    return _directive(scope, TAIL_MAX_AGE, f", stale-while-revalidate={TAIL_MAX_AGE}")


def long_poll(scope: Scope) -> str:
    return _directive(scope, LONG_POLL_MAX_AGE)


def cap_max_age(cache_control: str, cap: int) -> str:
    """`cache_control` with every max-age lowered to at most `cap` seconds."""
    return re.sub(r"max-age=(\d+)", lambda m: f"max-age={min(int(m.group(1)), cap)}", cache_control)


def max_age(cache_control: str) -> int | None:
    """The `max-age` of a Cache-Control value in seconds (the smallest, if repeated), or None."""
    ages = [int(m.group(1)) for m in re.finditer(r"(?<![-\w])max-age=(\d{1,12})\b", cache_control)]
    return min(ages) if ages else None


def surrogate_key(path: str) -> str:
    """A purge key naming the stream (Fastly `Surrogate-Key`, Cloudflare `Cache-Tag`)."""
    encoded = quote(path, safe="/-_.~")
    if len(encoded) > MAX_SURROGATE_KEY:
        encoded = "#" + hashlib.sha256(path.encode()).hexdigest()
    return "ds/" + encoded


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
