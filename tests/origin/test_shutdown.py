"""SIGTERM with live clients: long-polls answer 204, SSE responses end, the process exits 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.support.processes import OriginProcess


async def test_sigterm_ends_live_reads_and_exits_zero(tmp_path: Path) -> None:
    origin = OriginProcess(tmp_path / "data", long_poll_timeout=30).start()
    url = origin.stream_url + "live"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.put(url, headers={"Content-Type": "text/plain"}, data=b"hi") as r:
                assert r.status == 201
                tail = r.headers["Stream-Next-Offset"]

            async def long_poll() -> int:
                async with session.get(url, params={"offset": tail, "live": "long-poll"}) as r:
                    return r.status

            async def sse() -> bytes:
                async with session.get(url, params={"offset": "-1", "live": "sse"}) as r:
                    return await r.read()

            poll_task = asyncio.ensure_future(long_poll())
            sse_task = asyncio.ensure_future(sse())
            await asyncio.sleep(0.5)
            assert not poll_task.done() and not sse_task.done()
            started = time.monotonic()
            origin.proc.terminate()  # type: ignore[union-attr]
            status, body = await asyncio.wait_for(asyncio.gather(poll_task, sse_task), 5)  # noqa: TID251
            assert status == 204
            assert b"event: data\ndata:hi" in body and body.endswith(b"\n\n")
            assert body.count(b"event: control") == 2  # after the data, and a last one on shutdown
            assert time.monotonic() - started < 5
    finally:
        code = origin.stop(timeout=10)
    assert code == 0
