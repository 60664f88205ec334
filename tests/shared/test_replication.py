"""The log feed's frames: encoded by the origin, parsed incrementally by replicas."""

from __future__ import annotations

import pytest

from plugin_streams.shared import replication as r


def frames_bytes() -> bytes:
    return (
        r.record_header(0, 5, False, 1000)
        + b"hello"
        + r.record_header(5, 0, True, 1001)
        + r.heartbeat_frame(5, 0, True, False)
    )


def test_frames_round_trip_whatever_the_chunking() -> None:
    data = frames_bytes()
    expected = [
        r.RecordFrame(0, b"hello", False, 1000),
        r.RecordFrame(5, b"", True, 1001),
        r.Heartbeat(5, 0, True, False),
    ]
    for size in (1, 2, 3, 7, len(data)):
        parser = r.FrameParser(max_record=1024)
        got: list[object] = []
        for i in range(0, len(data), size):
            got.extend(parser.feed(data[i : i + size]))
        assert got == expected, size


def test_payload_bytes_are_never_read_as_headers() -> None:
    payload = b"R 1 2 3 4\nH 1 2 3 4\n"  # looks like frames: must stay a payload
    parser = r.FrameParser(max_record=1024)
    frames = parser.feed(r.record_header(7, len(payload), False, 1) + payload + r.heartbeat_frame(27, 0, False, True))
    assert frames == [r.RecordFrame(7, payload, False, 1), r.Heartbeat(27, 0, False, True)]


@pytest.mark.parametrize(
    "bad",
    [b"X 1 2\n", b"R 1 2 3\n", b"R a b c d\n", b"H 1 2 3\n", b"R -1 2 0 0\n", b"R " + b"9" * 200 + b"\n"],
)
def test_bad_headers_are_refused(bad: bytes) -> None:
    with pytest.raises(r.FrameError):
        r.FrameParser(max_record=1024).feed(bad)


def test_records_larger_than_allowed_are_refused_before_buffering() -> None:
    with pytest.raises(r.FrameError):
        r.FrameParser(max_record=10).feed(r.record_header(0, 11, False, 0))
