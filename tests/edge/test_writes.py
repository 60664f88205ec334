"""WriteMarks: which shared reads a reader may join after writes through the edge (pure)."""

from __future__ import annotations

from edge.writes import WriteMarks
from shared.offsets import Offset


def at(position: int, generation: int = 0) -> Offset:
    return Offset(generation, position)


def test_reads_from_before_an_append_end_need_reads_begun_after_it() -> None:
    marks = WriteMarks()
    assert marks.epoch("s", at(10)) == marks.epoch("s", None) == 0
    marks.wrote("s", at(20))
    assert marks.epoch("s", at(10)) == marks.epoch("s", None) == 1  # a new epoch: nothing older is shared
    assert marks.epoch("s", at(20)) == marks.epoch("s", at(25)) == 0  # at or past the end: shared across
    marks.wrote("s", at(30))
    assert marks.epoch("s", at(20)) == 2
    assert marks.epoch("s", at(30)) == 0
    assert marks.epoch("other", at(0)) == 0


def test_the_furthest_end_counts_when_acknowledgements_come_out_of_order() -> None:
    marks = WriteMarks()
    marks.wrote("s", at(30))
    marks.wrote("s", at(20))  # an earlier append, acknowledged later
    assert marks.epoch("s", at(25)) == 2
    assert marks.epoch("s", at(30)) == 0


def test_barriers_end_sharing_across_writes() -> None:
    marks = WriteMarks()
    marks.wrote("s", at(20))
    marks.wrote("s", None)  # a close, delete or create: no read from before it is shared after it
    assert marks.epoch("s", at(20)) == marks.epoch("s", at(99)) == 2
    marks.wrote("s", at(40))
    assert marks.epoch("s", at(40)) == 2  # reads begun after the barrier are shared again
    assert marks.epoch("s", at(39)) == 3
    marks.wrote("s", at(5, generation=1))  # a new generation is a barrier too
    assert marks.epoch("s", at(5, generation=1)) == marks.epoch("s", at(40)) == 4
    assert marks.epoch("s", None) == 4
