"""The origin's change log (origin/replication/changes.py): resume within its window, resync outside it."""

from __future__ import annotations

import asyncio

from plugin_streams.origin.replication.changes import ChangeLog
from plugin_streams.origin.storage.base import StreamConfig
from plugin_streams.origin.stream import StreamState


def _state(path: str, generation: int = 1) -> StreamState:
    return StreamState(StreamConfig(generation, path, "text/plain", None, None, 0), None, 0)


async def test_change_log_resumes_within_its_window_and_asks_for_a_resync_outside_it() -> None:
    log = ChangeLog(window=3)
    for i in range(5):
        log.created(_state(f"s{i}", i + 1))
    assert log.seq == 5
    lines = log.since(log.epoch, 2)
    assert lines is not None and [b'"seq":3' in line for line in lines] == [True, False, False]
    assert log.since(log.epoch, 1) is None  # event 2 rolled out of the window
    assert log.since("another-epoch", 4) is None  # the origin restarted
    assert log.since(log.epoch, 9) is None  # from the future
    assert log.since(log.epoch, 5) == []
    waiter = asyncio.ensure_future(log.wait(5, timeout=5))
    await asyncio.sleep(0)
    log.gone(_state("s0", 1), "deleted")
    async with asyncio.timeout(1):
        await waiter
    assert b'"type":"deleted"' in (log.since(log.epoch, 5) or [b""])[0]
