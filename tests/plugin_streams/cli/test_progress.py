"""plugin_streams.cli.progress: throttled redraws, only to a terminal, never when piped."""

from __future__ import annotations

import io
import re

import pytest

from plugin_streams.cli import progress
from plugin_streams.cli.progress import Progress


class Terminal(io.StringIO):
    """A stream that says it is a terminal, recording every write."""

    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty
        self.writes: list[str] = []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_redraws_at_most_ten_times_a_second_whatever_the_message_rate() -> None:
    err, clock = Terminal(), Clock()
    shown = Progress("reading s", err=err, enabled=True, clock=clock)
    for i in range(10_000):  # 10,000 messages over one simulated second
        clock.now += 0.0001
        shown.step(f"offset-{i}")
    assert shown.count == 10_000
    assert 9 <= len(err.writes) <= 10
    assert all(w.startswith("\r") and w.endswith("\x1b[K") for w in err.writes)
    counts = [int(re.search(r": ([\d,]+) messages", w)[1].replace(",", "")) for w in err.writes]  # type: ignore[index]
    assert counts == sorted(counts) and counts[0] >= 999 and counts[-1] >= 9_000
    assert f"at offset-{counts[-1] - 1}" in err.writes[-1]


def test_a_short_read_draws_nothing_and_leaves_no_trace() -> None:
    err, clock = Terminal(), Clock()
    shown = Progress("reading s", err=err, enabled=True, clock=clock)
    for i in range(50):
        clock.now += 0.001
        shown.step(str(i))
    shown.finish()
    assert err.getvalue() == ""


def test_finish_replaces_the_line_with_a_summary_and_clear_erases_it() -> None:
    err, clock = Terminal(), Clock()
    shown = Progress("reading s", err=err, enabled=True, clock=clock)
    clock.now += 0.5
    shown.step("a")
    shown.clear()
    assert err.writes[-1] == "\r\x1b[K"
    shown.clear()  # nothing drawn now: nothing to erase
    assert len(err.writes) == 2
    clock.now += 0.5
    shown.step("b")
    shown.finish()
    assert err.writes[-1] == "\r\x1b[Kreading s: 2 messages in 1.0s\n"


@pytest.mark.parametrize(
    ("err_tty", "out_tty", "drawn"), [(True, False, True), (False, False, False), (True, True, False)]
)
def test_drawn_only_when_stderr_is_a_terminal_and_stdout_is_not(err_tty: bool, out_tty: bool, drawn: bool) -> None:
    assert progress.wanted(Terminal(err_tty), Terminal(out_tty)) is drawn


def test_disabled_progress_writes_nothing_but_still_counts() -> None:
    err, clock = Terminal(tty=False), Clock()
    shown = Progress("reading s", err=err, clock=clock)  # stderr is "piped": decided from the stream
    for i in range(100):
        clock.now += 0.1
        shown.step(str(i))
    shown.finish()
    assert shown.count == 100 and err.writes == []
