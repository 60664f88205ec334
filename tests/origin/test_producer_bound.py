"""A stream remembers at most MAX_PRODUCERS_PER_STREAM producers, and recovery agrees.

Producer ids are the client's to choose, so one client could otherwise grow a stream's memory
without end. The producer whose last accepted append is oldest is forgotten first; a forgotten
producer is new again (its next append must start at seq 0), before and after a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.shared.producer import MAX_PRODUCERS_PER_STREAM
from tests.support.processes import OriginProcess

pytestmark = pytest.mark.timeout(120)


async def append(session: aiohttp.ClientSession, url: str, producer: str, seq: int, epoch: int = 0) -> tuple[int, str]:
    headers = {
        "Content-Type": "text/plain",
        "Producer-Id": producer,
        "Producer-Epoch": str(epoch),
        "Producer-Seq": str(seq),
    }
    async with session.post(url, data=f"{producer}:{seq};".encode(), headers=headers) as r:
        return r.status, r.headers.get("Producer-Expected-Seq", "")


async def test_least_recent_producer_is_forgotten_and_recovery_agrees(tmp_path: Path) -> None:
    data = tmp_path / "data"
    middle = [f"m{i}" for i in range(2, MAX_PRODUCERS_PER_STREAM)]
    with OriginProcess(data, "--fsync", "never") as origin:
        url = origin.stream_url + "s"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.put(url, headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 201
            assert await append(session, url, "p0", 0) == (200, "")
            assert await append(session, url, "p1", 0) == (200, "")
            gate = asyncio.Semaphore(32)

            async def one(producer: str) -> tuple[int, str]:
                async with gate:
                    return await append(session, url, producer, 0)

            assert set(await asyncio.gather(*(one(p) for p in middle))) == {(200, "")}
            # MAX_PRODUCERS_PER_STREAM producers so far; one more forgets p0, the oldest.
            assert await append(session, url, "last", 0) == (200, "")
            assert await append(session, url, "p0", 1) == (409, "0")  # forgotten: a new producer
            assert await append(session, url, "p1", 0) == (204, "")  # still known: a duplicate
            assert await append(session, url, "p0", 0, epoch=3) == (200, "")  # starts again at 0; forgets p1
            assert await append(session, url, "last", 1) == (200, "")
    with OriginProcess(data, "--fsync", "never") as origin:
        url = origin.stream_url + "s"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            assert await append(session, url, "p1", 1) == (409, "0")  # recovery forgot it too
            assert await append(session, url, "m2", 0) == (204, "")
            assert await append(session, url, "last", 1) == (204, "")
            assert await append(session, url, "p0", 0, epoch=3) == (204, "")
            assert await append(session, url, "p0", 0, epoch=2) == (403, "")  # fencing holds for the known
