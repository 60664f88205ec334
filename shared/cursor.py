"""Stream cursors (PROTOCOL.md §10.1): interval numbers that move CDN cache keys forward.

The cursor is the number of 20 s intervals since 2024-10-09T00:00:00Z. When a client echoes a
cursor at or ahead of the current interval, the answer must be strictly greater. The spec says
"random jitter"; we derive the jitter from a hash of (stream, offset, cursor) instead, so every
client waiting at the same place gets the same next cursor and keeps sharing one cache key
(random jitter drops CDN collapsing to nothing; see notes §2.3).
"""

from __future__ import annotations

import hashlib
from typing import Final

EPOCH_MS: Final = 1_728_432_000_000  # 2024-10-09T00:00:00Z
INTERVAL_MS: Final = 20_000
MAX_JITTER_INTERVALS: Final = 180  # 3600 s, the spec's upper bound


def current_interval(now_ms: int) -> int:
    return max(0, (now_ms - EPOCH_MS) // INTERVAL_MS)


def next_cursor(now_ms: int, echoed: int | None, key: str) -> int:
    interval = current_interval(now_ms)
    if echoed is None or echoed < interval:
        return interval
    digest = hashlib.blake2b(f"{key}\0{echoed}".encode(), digest_size=8).digest()
    return echoed + 1 + int.from_bytes(digest, "big") % MAX_JITTER_INTERVALS
