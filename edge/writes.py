"""Writes through this edge, per path, and which shared reads a later reader may still be given.

Read-your-writes: a read issued after a write through this edge was acknowledged must see it.
A shared read (a flight, a recent answer) may have begun before that write, so readers share
only reads of the same *epoch*:
- a read without an explicit offset shares only reads begun after the last acknowledged write
  (the epoch is the path's write count);
- a read from an explicit offset shares reads begun after the last *barrier* (the epoch is the
  count at the barrier), since an append changes nothing before its start. An answer from an
  offset shows every acknowledged append that ends at or before the answer's end; so a reader
  behind the furthest acknowledged append `needs` an answer reaching that append's end, and one
  that falls short is not given to it (it asks again, after the append). A reader at or past
  that end needs nothing more: the log had to reach its offset before any answer from there
  was made.
A barrier is a write whose effect is not "data before an offset": create, delete, close, a new
generation, or any write whose end is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache

from plugin_streams.shared.offsets import Offset

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
        if offset is not None and (mark.end is None or offset.generation == mark.end.generation):
            return mark.barrier
        return mark.count

    def needs(self, path: str, offset: Offset | None) -> Offset | None:
        """Where an answer from `offset` must reach for this reader (None: any answer will do)."""
        end = self._marks.get(path, _NONE).end
        if offset is not None and end is not None and offset.generation == end.generation and offset < end:
            return end
        return None


def reaches(end: Offset, need: Offset | None) -> bool:
    """Whether an answer ending at `end` is one a reader that `needs` this may be given."""
    return need is None or (end.generation == need.generation and end >= need)
