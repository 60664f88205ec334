"""A replication client whose log feed plays a script: frames in chunks, then silence.

For unit tests of followers and the replica without an origin: each `log()` call opens the
next scripted feed; a feed delivers its chunks one `read()` at a time and then waits (an idle
but live connection) until it is closed. A step of a script may also be a plain function, run
when the feed reaches it (to move a test clock between chunks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from plugin_streams.shared import replication as r

Chunk = list[r.RecordFrame | r.Heartbeat]
Step = Chunk | Callable[[], None]


class ScriptedFeed:
    def __init__(self, steps: list[Step]) -> None:
        self.missing: int | None = None
        self._steps = list(steps)
        self._closed = asyncio.Event()

    async def read(self) -> Chunk | None:
        while self._steps:
            step = self._steps.pop(0)
            if callable(step):
                step()
            else:
                return step
        await self._closed.wait()
        return None

    def close(self) -> None:
        self._closed.set()


class ScriptedLog:
    """Stands in for ReplicationClient.log: every feed opened, in order, plays the next script."""

    def __init__(self, *feeds: list[Step]) -> None:
        self._feeds = [ScriptedFeed(chunks) for chunks in feeds]
        self.opened: list[tuple[str, int, int]] = []  # (path, generation, from)

    def add(self, *steps: Step) -> None:
        """Script the next feed opened: its chunks, one a read."""
        self._feeds.append(ScriptedFeed(list(steps)))

    @asynccontextmanager
    async def log(self, path: str, generation: int, start: int, max_record: int) -> AsyncIterator[ScriptedFeed]:
        self.opened.append((path, generation, start))
        feed = self._feeds.pop(0) if self._feeds else ScriptedFeed([])
        yield feed


def record(start: int, payload: bytes, written_ms: int, *, closed: bool = False) -> r.RecordFrame:
    return r.RecordFrame(start, payload, closed, written_ms)


def heartbeat(tail: int, *, closed: bool = False) -> r.Heartbeat:
    return r.Heartbeat(tail, 0, closed, False)
