"""plugin_streams._backoff: jittered, capped reconnect delays."""

from __future__ import annotations

import random

from plugin_streams._backoff import Backoff


def test_backoff_is_jittered_capped_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next() <= 0.1
