"""Jittered exponential backoff: each wait is a random point in the upper half of its window.

The jitter spreads clients that failed together (an origin restart, an edge going away) so
they do not all come back in the same instant; the cap keeps recovery prompt.
"""

from __future__ import annotations

import random
from typing import Final

BASE: Final = 0.1
CAP: Final = 3.0


class Backoff:
    def __init__(self, base: float = BASE, cap: float = CAP, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        window = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return self._rng.uniform(window / 2, window)

    def reset(self) -> None:
        self.attempt = 0
