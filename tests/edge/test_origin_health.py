"""OriginHealth: one log line per transition, never one per request; stale failures do not count."""

from __future__ import annotations

import logging

import pytest

from plugin_streams.edge.origin_health import OriginHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "plugin_streams.edge.origin_health"]


def test_unknown_until_the_first_outcome() -> None:
    health = OriginHealth("http://o")
    assert health.reachable is None


def test_one_warning_when_it_goes_away_and_one_info_when_it_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    health = OriginHealth("http://o:1", clock)
    health.answered()
    for _ in range(50):  # fifty requests fail: one line
        clock.now += 0.1
        health.failed(health.began(), "ClientConnectorError: refused")
    assert health.reachable is False
    clock.now += 2.0  # down from the first failure: 4.9 s of failures, then 2 s more
    for _ in range(50):
        health.answered()
    assert health.reachable is True
    assert lines(caplog) == [
        (logging.WARNING, "origin http://o:1 unreachable: ClientConnectorError: refused"),
        (logging.INFO, "origin http://o:1 answers again (unreachable for 6.9 s)"),
    ]


def test_the_first_answer_is_not_logged_as_a_return(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    health = OriginHealth("http://o", Clock())
    health.answered()
    assert health.reachable is True and lines(caplog) == []


def test_a_failure_begun_before_an_answer_says_nothing_about_now(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    health = OriginHealth("http://o", clock)
    long_poll_began = health.began()
    clock.now += 1
    health.answered()  # another request got an answer meanwhile
    clock.now += 30
    health.failed(long_poll_began, "TimeoutError")  # the long-poll timed out later
    assert health.reachable is True and lines(caplog) == []
    health.failed(health.began(), "TimeoutError")  # one begun after the answer does count
    assert health.reachable is False


def test_the_latest_reason_is_kept_while_down() -> None:
    clock = Clock()
    health = OriginHealth("http://o", clock)
    health.failed(health.began(), "ClientConnectorError: refused")
    health.failed(health.began(), "TimeoutError")
    assert health.reason == "TimeoutError"
