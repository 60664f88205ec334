"""Writes through this edge, per path, and which shared reads a later reader may still be given.

Read-your-writes: a read issued after a write through this edge was acknowledged must see it.
A shared read (a flight, a recent answer) may have begun before that write, so readers share
only reads of the same *epoch*. The epoch is the path's write count (reads begun after the last
acknowledged write), except for a read from an offset at or past the end of every append
acknowledged since the last barrier: the log had to reach that offset before any answer from it
was made, so the answer came after those appends, and such reads share across them (the epoch
is the count at the barrier). A barrier is a write whose effect is not "data before an offset":
create, delete, close, a new generation, or any write whose end is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache

from shared.offsets import Offset

MAX_PATHS = 100_000


@dataclass(frozen=True, slots=True)
class _Mark:
    count: int  # writes acknowledged through this edge
    barrier: int  # the count just after the last barrier
    end: Offset | None  # the furthest end of the appends since the barrier (None: none yet)


_NONE = _Mark(0, 0, None)


class WriteMarks:
    def __init__(self, max_paths: int = MAX_PATHS) -> None:
        self._marks: LRUCache[str, _Mark] = LRUCache(max_paths)

    def wrote(self, path: str, end: Offset | None) -> None:
        """A write to `path` was acknowledged; `end` is where an append ended (None: a barrier)."""
        mark = self._marks.get(path, _NONE)
        count = mark.count + 1
        if end is None or (mark.end is not None and mark.end.generation != end.generation):
            self._marks[path] = _Mark(count, count, end)
        else:
            self._marks[path] = _Mark(count, mark.barrier, end if mark.end is None else max(mark.end, end))

    def epoch(self, path: str, offset: Offset | None) -> int:
        """Shared reads of `path` from `offset` (None: not an explicit offset) with this epoch may be joined."""
        mark = self._marks.get(path, _NONE)
        end = mark.end
        if offset is not None and end is not None and offset.generation == end.generation and offset >= end:
            return mark.barrier
        return mark.count
