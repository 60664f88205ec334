"""Sparse message boundaries of one stored JSON batch: where a read may start, without a rescan.

A JSON batch of millions of tiny messages would need millions of boundaries to list them all,
and a full structural scan per read to find one. Marks keep a few instead: every gap between
consecutive marks is either shorter than `step` bytes or holds exactly one message (no
boundary inside). Deciding whether a position is a boundary then costs a bisect plus a scan of
less than `step` bytes, and the marks take about 16 bytes per `step` bytes of data.

Built by one structural scan (jsonmode.iter_message_ends); callers run that off the event loop
for big batches, or bound it with `budget` and treat positions past `scanned` as unknown.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Final

from plugin_streams.shared import jsonmode

MARK_STEP: Final = 4096


class MessageMarks:
    __slots__ = ("marks", "scanned", "step")

    def __init__(self, marks: array[int], scanned: int, step: int) -> None:
        self.marks = marks  # sorted message boundaries, starting with 0
        self.scanned = scanned  # boundaries are known up to here
        self.step = step

    @classmethod
    def build(cls, stored: bytes | memoryview, *, step: int = MARK_STEP, budget: int | None = None) -> MessageMarks:
        """Marks of `stored`; with a `budget`, only its first `budget` bytes are scanned."""
        marks = array("Q", [0])
        last = previous = 0
        for end in jsonmode.iter_message_ends(stored, 0, budget):
            if end - last >= step:
                if previous != last:
                    marks.append(previous)  # closes a gap shorter than `step`
                    last = previous
                if end - last >= step:
                    marks.append(end)  # one long message: nothing inside it is a boundary
                    last = end
            previous = end
        if previous != last:
            marks.append(previous)
        return cls(marks, previous, step)

    def knows(self, position: int) -> bool:
        return position <= self.scanned

    def is_end(self, stored: bytes | memoryview, position: int) -> bool:
        """Whether `position` (at most `scanned`) is a message boundary of `stored`."""
        marks = self.marks
        i = bisect_right(marks, position) - 1
        if marks[i] == position:
            return True
        if i + 1 >= len(marks) or marks[i + 1] - marks[i] >= self.step:
            return False
        return jsonmode.is_message_end(stored, position, marks[i])

    def nbytes(self) -> int:
        return self.marks.itemsize * len(self.marks)
