"""Load limits: open live connections (503) and per-client request rates (429).

Both answer with a `Retry-After`; the 503 one is jittered so that clients refused together do
not all come back in the same second.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cachetools import TTLCache
from prometheus_client import Gauge

from plugin_streams.shared import headers as h
from plugin_streams.shared.errors import TooManyRequests, Unavailable

RETRY_AFTER = h.RETRY_AFTER


class LiveLimiter:
    def __init__(
        self, maximum: int, rng: random.Random | None = None, on_reject: Callable[[], None] | None = None
    ) -> None:
        self.maximum = maximum
        self.open = 0
        self._rng = rng or random.Random()
        self._on_reject = on_reject

    def enter(self) -> None:
        if self.open >= self.maximum:
            if self._on_reject is not None:
                self._on_reject()
            raise Unavailable("too many live connections; retry later", {RETRY_AFTER: str(self._rng.randint(1, 10))})
        self.open += 1

    def leave(self) -> None:
        self.open -= 1


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per client key (token name or IP), bounded in number (idle ones expire)."""

    def __init__(
        self, rate: float, burst: int, *, max_clients: int = 100_000, on_reject: Callable[[], None] | None = None
    ) -> None:
        self._on_reject = on_reject
        self.rate = rate
        self.burst = burst
        self._buckets: TTLCache[str, _Bucket] = TTLCache(max_clients, ttl=max(60.0, burst / rate))

    def check(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[key] = bucket
        if bucket.tokens < 1:
            if self._on_reject is not None:
                self._on_reject()
            wait = math.ceil((1 - bucket.tokens) / self.rate)
            raise TooManyRequests("rate limit exceeded", {RETRY_AFTER: str(max(1, wait))})
        bucket.tokens -= 1


@contextmanager
def live_connection(limit: LiveLimiter, gauge: Gauge) -> Iterator[None]:
    """Count one live read against the limit (503 beyond it) and in its gauge, while it lasts."""
    limit.enter()
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()
        limit.leave()
