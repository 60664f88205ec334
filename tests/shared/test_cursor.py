"""Stream cursors (PROTOCOL.md §10.1): interval numbers, strictly advanced when echoed."""

from __future__ import annotations

import itertools

import pytest

from plugin_streams.shared.cursor import EPOCH_MS, INTERVAL_MS, MAX_JITTER_INTERVALS, current_interval, next_cursor

NOW_MS = EPOCH_MS + 1000 * INTERVAL_MS + 1234  # inside interval 1000
KEY = "7:0000000000000007_0000000000000042"


def test_intervals_count_20_s_from_2024_10_09() -> None:
    assert EPOCH_MS == 1_728_432_000_000  # 2024-10-09T00:00:00Z
    assert current_interval(EPOCH_MS) == 0
    assert current_interval(EPOCH_MS + 19_999) == 0
    assert current_interval(EPOCH_MS + 20_000) == 1
    assert current_interval(NOW_MS) == 1000
    assert current_interval(EPOCH_MS - 1) == 0  # never negative
    assert current_interval(0) == 0


def test_without_echo_the_cursor_is_the_current_interval() -> None:
    assert next_cursor(NOW_MS, None, KEY) == 1000


@pytest.mark.parametrize("echoed", [0, 1, 500, 999])
def test_an_old_echo_gets_the_current_interval(echoed: int) -> None:
    assert next_cursor(NOW_MS, echoed, KEY) == 1000


@pytest.mark.parametrize("echoed", [1000, 1001, 1500, 10**17])
def test_an_echo_at_or_ahead_of_now_gets_a_strictly_greater_cursor(echoed: int) -> None:
    cursor = next_cursor(NOW_MS, echoed, KEY)
    assert echoed < cursor <= echoed + MAX_JITTER_INTERVALS


def test_jitter_is_1_to_3600_seconds() -> None:
    jumps = {next_cursor(NOW_MS, 1000, f"{KEY}:{i}") - 1000 for i in range(2000)}
    assert min(jumps) >= 1 and max(jumps) * INTERVAL_MS <= 3_600_000
    assert len(jumps) > MAX_JITTER_INTERVALS // 2  # spread, not a constant


def test_deterministic_for_the_same_key_and_echo() -> None:
    # Every client waiting at the same place gets the same next cursor (one shared cache key).
    first = next_cursor(NOW_MS, 1000, KEY)
    assert all(next_cursor(NOW_MS + dt, 1000, KEY) == first for dt in (0, 1, 5_000, 18_000))


def test_depends_on_the_key() -> None:
    assert len({next_cursor(NOW_MS, 1000, f"stream-{i}") for i in range(20)}) > 1


def test_echoing_repeatedly_within_one_interval_keeps_moving_forward() -> None:
    cursor = next_cursor(NOW_MS, None, KEY)
    seen = [cursor]
    for _ in range(50):
        cursor = next_cursor(NOW_MS, cursor, KEY)
        seen.append(cursor)
    assert all(a < b for a, b in itertools.pairwise(seen))


def test_time_catching_up_with_a_jittered_cursor() -> None:
    jittered = next_cursor(NOW_MS, 1000, KEY)
    later = EPOCH_MS + (jittered + 5) * INTERVAL_MS
    assert next_cursor(later, jittered, KEY) == jittered + 5
