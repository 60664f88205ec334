"""WriteMarks: which shared reads a reader may join after writes through the edge; joined answers (pure)."""

from __future__ import annotations

from multidict import CIMultiDict

from plugin_streams.edge.joined import join
from plugin_streams.edge.upstream import Reply
from plugin_streams.edge.writes import WriteMarks, reaches
from plugin_streams.shared.offsets import Offset


def at(position: int, generation: int = 0) -> Offset:
    return Offset(generation, position)


def test_reads_without_an_offset_share_only_reads_begun_after_the_last_write() -> None:
    marks = WriteMarks()
    assert marks.epoch("s", None) == 0
    marks.wrote("s", at(20))
    assert marks.epoch("s", None) == 1
    marks.wrote("s", at(30))
    assert marks.epoch("s", None) == 2
    assert marks.epoch("other", None) == 0


def test_reads_from_an_offset_share_across_appends_but_readers_behind_need_their_end() -> None:
    marks = WriteMarks()
    assert marks.epoch("s", at(10)) == 0 and marks.needs("s", at(10)) is None
    marks.wrote("s", at(20))
    assert marks.epoch("s", at(10)) == marks.epoch("s", at(20)) == marks.epoch("s", at(25)) == 0
    assert marks.needs("s", at(10)) == at(20)  # behind the acknowledged append: must see it
    assert marks.needs("s", at(20)) is None and marks.needs("s", at(25)) is None
    marks.wrote("s", at(30))
    assert marks.needs("s", at(20)) == at(30)
    assert marks.needs("s", at(30)) is None
    assert marks.needs("other", at(0)) is None


def test_the_furthest_end_counts_when_acknowledgements_come_out_of_order() -> None:
    marks = WriteMarks()
    marks.wrote("s", at(30))
    marks.wrote("s", at(20))  # an earlier append, acknowledged later
    assert marks.needs("s", at(25)) == at(30)
    assert marks.needs("s", at(30)) is None


def test_barriers_end_sharing_across_writes() -> None:
    marks = WriteMarks()
    marks.wrote("s", at(20))
    marks.wrote("s", None)  # a close, delete or create: no read from before it is shared after it
    assert marks.epoch("s", at(20)) == marks.epoch("s", at(99)) == 2
    marks.wrote("s", at(40))
    assert marks.epoch("s", at(40)) == marks.epoch("s", at(39)) == 2  # begun after the barrier: shared
    assert marks.needs("s", at(39)) == at(40)
    marks.wrote("s", at(5, generation=1))  # a new generation is a barrier too
    assert marks.epoch("s", at(5, generation=1)) == 4
    assert marks.epoch("s", at(40)) == marks.epoch("s", None) == 4  # the old generation: nothing shared
    assert marks.needs("s", at(40)) is None


def test_an_answer_reaches_a_need_at_or_past_it_in_the_same_generation() -> None:
    assert reaches(at(10), None)
    assert reaches(at(20), at(20)) and reaches(at(21), at(20))
    assert not reaches(at(19), at(20))
    assert not reaches(at(90, generation=0), at(5, generation=1))


def test_joined_answers_are_the_answer_from_the_first_offset() -> None:
    def reply(start: str, end: str, body: bytes, content_type: str, *, closed: bool = False) -> Reply:
        headers = CIMultiDict({"Content-Type": content_type, "Stream-Next-Offset": end, "ETag": f'"{start}:{end}"'})
        headers["Stream-Up-To-Date"] = "true"
        if closed:
            headers["Stream-Closed"] = "true"
        return Reply(200, headers, body)

    a, b, c = (str(at(n)) for n in (3, 5, 9))
    text = join(a, [reply(a, b, b"xy", "text/plain"), reply(b, c, b"zzzz", "text/plain", closed=True)])
    assert text.body == b"xyzzzz"
    assert (text.headers["Stream-Next-Offset"], text.headers["ETag"]) == (c, f'"{a}:{c}:c"')
    assert text.headers["Stream-Closed"] == "true"
    json_type = "application/json"
    parts = [reply(a, b, b'[{"a":1}]', json_type), reply(b, b, b"[]", json_type), reply(b, c, b"[2,3]", json_type)]
    joined = join(a, parts)
    assert joined.body == b'[{"a":1},2,3]' and joined.headers["ETag"] == f'"{a}:{c}"'
    single = reply(a, b, b"xy", "text/plain")
    assert join(a, [single]) is single
