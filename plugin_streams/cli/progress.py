"""A spinner and counter for long reads, on stderr, redrawn at most ten times a second.

Shown only when stderr is a terminal and stdout is not: `plugin-streams read s > s.jsonl` at a
terminal shows how far it got, while in pipes, logs and cron mails (stderr not a terminal) not
one byte of it appears. When stdout is the terminal too, the JSON lines scrolling by are the
progress, and a line redrawn under them would garble them, so nothing is drawn either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

#: Seconds between redraws: fast enough to look alive, cheap at any message rate.
INTERVAL: Final = 0.1
FRAMES: Final = "|/-\\"
_ERASE_LINE: Final = "\r\x1b[K"


def wanted(err: TextIO, out: TextIO) -> bool:
    """Whether to draw: stderr is a terminal and stdout is not (see the module docstring)."""
    return _isatty(err) and not _isatty(out)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


class Progress:
    def __init__(
        self,
        label: str,
        *,
        err: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.count = 0
        self._err = err or sys.stderr
        self.enabled = wanted(self._err, sys.stdout) if enabled is None else enabled
        self._clock = clock
        self._started = self._shown = clock()
        self._frame = 0
        self._drawn = False  # a progress line is on the screen

    def step(self, offset: str) -> None:
        """One more message (at `offset`); redraws if INTERVAL has passed since the last time."""
        self.count += 1
        if not self.enabled:
            return
        now = self._clock()
        if now - self._shown < INTERVAL:
            return
        self._shown = now
        self._frame = (self._frame + 1) % len(FRAMES)
        rate = self.count / max(now - self._started, 1e-9)
        self._write(f"\r{FRAMES[self._frame]} {self.label}: {self.count:,} messages ({rate:,.0f}/s), at {offset}\x1b[K")
        self._drawn = True

    def clear(self) -> None:
        """Erase the line, so that another stderr line (a reconnect, an error) starts clean."""
        if self._drawn:
            self._write(_ERASE_LINE)
            self._drawn = False

    def finish(self) -> None:
        """Replace the line with a summary, if a line was ever drawn (short reads leave no trace)."""
        if self._drawn:
            elapsed = self._clock() - self._started
            self._write(f"{_ERASE_LINE}{self.label}: {self.count:,} messages in {elapsed:.1f}s\n")
            self._drawn = False

    def _write(self, text: str) -> None:
        self._err.write(text)
        self._err.flush()
