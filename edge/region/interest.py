"""Which streams a region wants, and which reads the origin must hear about.

Wanted: those matching `--replicate` patterns (eagerly, as the change feed announces them), plus
any other stream read in the region, from its first read until it has gone unread for
`replica_idle` seconds. Reads of streams with a sliding TTL are collected for the origin, which
alone decides expiry (it counts reads in every region): the replica reports them in batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from plugin_streams.edge.region.patterns import PathPatterns


class ReadInterest:
    def __init__(self, patterns: PathPatterns, idle: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.patterns = patterns
        self.idle = idle
        self._monotonic = monotonic
        self._last_read: dict[str, float] = {}  # lazily replicated paths: last local read (monotonic)
        self._touched: set[str] = set()  # TTL streams read here since the last report

    def wanted(self, path: str) -> bool:
        return self.patterns.matches(path) or path in self._last_read

    def start_lazily(self, path: str) -> None:
        """`path` is replicated because it is read here, from now until it goes unread."""
        self._last_read[path] = self._monotonic()

    def is_lazy(self, path: str) -> bool:
        return path in self._last_read

    def forget(self, path: str) -> None:
        self._last_read.pop(path, None)

    def note_read(self, path: str, *, sliding_ttl: bool) -> None:
        if path in self._last_read:
            self._last_read[path] = self._monotonic()
        if sliding_ttl:
            self._touched.add(path)

    def take_idle(self) -> list[str]:
        """The lazily replicated paths unread for `idle` seconds (no longer wanted from now on)."""
        cutoff = self._monotonic() - self.idle
        idle = [path for path, last in self._last_read.items() if last < cutoff and not self.patterns.matches(path)]
        for path in idle:
            del self._last_read[path]
        return idle

    def take_touched(self) -> list[str]:
        """The TTL streams read since the last report, sorted; `untake` what could not be reported."""
        touched, self._touched = sorted(self._touched), set()
        return touched

    def untake(self, paths: Iterable[str]) -> None:
        self._touched.update(paths)

    @property
    def any_touched(self) -> bool:
        return bool(self._touched)
