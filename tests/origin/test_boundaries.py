"""Message boundaries inside big JSON records (origin.boundaries): one scan per record, shared.

The scan runs on a worker thread; here it is replaced by one the test releases, so the moment
each reader arrives (before, during or after the scan) is placed exactly.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from plugin_streams.origin.boundaries import INLINE_BYTES, RecordBoundaries
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.jsonmarks import MessageMarks

MESSAGE = b'{"n":1},'  # stored JSON: compact messages, each followed by a comma
RECORD = MESSAGE * (INLINE_BYTES // len(MESSAGE) + 1)  # big enough to be scanned off the loop


class Scans:
    """MessageMarks.build, counted, held until released (from the test, on the loop's side)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.started = threading.Event()  # a scan began
        self.finished = threading.Event()  # a scan ended
        self.release = threading.Event()
        self.fail = False
        build = MessageMarks.build

        def held(stored: bytes | memoryview) -> MessageMarks:
            self.calls += 1
            self.started.set()
            self.release.wait(10)
            try:
                if self.fail:
                    raise RuntimeError("scan failed")
                return build(stored)
            finally:
                self.finished.set()

        monkeypatch.setattr(MessageMarks, "build", held)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Scans:
    return Scans(monkeypatch)


def reader(marks: RecordBoundaries, skip: int, start: int = 0) -> asyncio.Task[bool]:
    task: asyncio.Task[bool] = spawn(marks.is_end(start, memoryview(RECORD), skip), name="reader")
    return task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def happened(event: threading.Event) -> None:
    """Waits (off the loop) for the worker thread to get there."""
    assert await asyncio.to_thread(event.wait, 5)


async def test_small_records_are_scanned_where_read(scans: Scans) -> None:
    marks = RecordBoundaries()
    assert await marks.is_end(0, MESSAGE * 2, len(MESSAGE))
    assert not await marks.is_end(0, MESSAGE * 2, 3)
    assert scans.calls == 0


async def test_concurrent_readers_share_one_scan_and_later_ones_reuse_it(scans: Scans) -> None:
    marks = RecordBoundaries()
    readers = [reader(marks, len(MESSAGE) * 3), reader(marks, 3)]
    await settle()
    scans.release.set()
    assert await asyncio.gather(*readers) == [True, False]
    assert await marks.is_end(0, memoryview(RECORD), len(MESSAGE) * 7)
    assert scans.calls == 1


async def test_a_scan_is_kept_even_if_every_reader_left(scans: Scans) -> None:
    marks = RecordBoundaries()
    leaving = reader(marks, len(MESSAGE))
    await settle()
    leaving.cancel()
    await settle()
    scans.release.set()
    await happened(scans.finished)
    await settle()  # (the loop learns the scan ended)
    assert await marks.is_end(0, memoryview(RECORD), len(MESSAGE))
    assert scans.calls == 1


async def test_a_failed_scan_reaches_every_reader_and_the_next_read_tries_again(scans: Scans) -> None:
    marks = RecordBoundaries()
    scans.fail = True
    readers = [reader(marks, len(MESSAGE)) for _ in range(2)]
    await settle()
    scans.release.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    scans.fail = False
    assert await marks.is_end(0, memoryview(RECORD), len(MESSAGE))
    assert scans.calls == 2


async def test_marks_of_dropped_records_are_not_kept(scans: Scans) -> None:
    marks = RecordBoundaries()
    scanning = reader(marks, len(MESSAGE), start=100)
    await settle()
    marks.forget_before(200)  # retention dropped the record while it was scanned
    scans.release.set()
    assert await scanning
    scans.release.clear()
    scans.started.clear()
    again = reader(marks, len(MESSAGE), start=100)
    await happened(scans.started)  # not kept: a read there scans again
    assert scans.calls == 2
    scans.release.set()
    await again
