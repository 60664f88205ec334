"""The wall clock: unix time in whole milliseconds, as the origin stamps records and replicas measure lag.

Pure stdlib and injectable: code that reads the time takes a `WallClock` argument defaulting to
`wall_clock_ms`, so tests can hand it a fake and step time without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeAlias

#: A zero-argument function returning unix time in milliseconds.
WallClock: TypeAlias = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
