"""An edge in front of two origins sharing one database (`--origin A --origin B`).

What the edge caches must follow what either origin does: a stream deleted through B (not through
the edge) stops being served from the edge's cache of immutable chunks within a bound, because
the change feed the edge follows on A is the database's, which B wrote. And when A dies, writes
and live readers through the edge carry on through B.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.shared import headers as h
from tests.support.processes import process_group
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.timeout(90)

BINARY = {h.CONTENT_TYPE: "application/octet-stream"}
#: A deletion made through the other origin must reach the edge's cache within this many seconds.
PURGE_BOUND = 5.0


async def _status(http: aiohttp.ClientSession, url: str, offset: str) -> int:
    async with http.get(url, params={"offset": offset}) as response:
        await response.read()
        return response.status


async def test_an_edge_over_two_origins_forgets_what_the_other_deleted_and_survives_one(
    tmp_path: Path, postgres_dsn: str
) -> None:
    flags = ("--engine", "postgres", "--database-url", postgres_dsn)
    with process_group(tmp_path, long_poll_timeout=0.5) as group:
        a = group.origin(*flags, data_dir=tmp_path / "a")
        b = group.origin(*flags, data_dir=tmp_path / "b")
        edge = group.edge(a.url, "--origin", b.url)
        async with aiohttp.ClientSession() as http:
            url = edge.stream_url + "cached"
            async with http.put(url, headers=BINARY) as response:
                start = response.headers[h.STREAM_NEXT_OFFSET]
            for part in (b"a" * 40_000, b"b" * 40_000):  # the first 64 KiB chunk ends complete: immutable
                async with http.post(url, headers=BINARY, data=part) as response:
                    assert response.status == 204
            for _ in range(2):  # the second read is the edge's cached copy
                async with http.get(url, params={"offset": start}) as response:
                    assert response.status == 200 and await response.read() == b"a" * 40_000
                    assert "immutable" in response.headers[h.CACHE_CONTROL]
            async with http.delete(b.stream_url + "cached") as response:
                assert response.status == 204
            deleted = time.monotonic()
            while await _status(http, url, start) != 404:
                assert time.monotonic() - deleted < PURGE_BOUND, "the edge still serves a deleted stream"
                await asyncio.sleep(0.1)
            purge = time.monotonic() - deleted

            live = edge.stream_url + "live"
            async with http.put(live, headers={h.CONTENT_TYPE: "text/plain"}) as response:
                assert response.status == 201
            text = {h.CONTENT_TYPE: "text/plain"}
            async with http.get(live, params={"offset": "-1", "live": "sse"}) as sse:
                reader = SSEReader(sse)
                a.kill()  # the edge's current origin dies under a live reader
                for seq in range(3):
                    producer = {h.PRODUCER_ID: "p", h.PRODUCER_EPOCH: "0", h.PRODUCER_SEQ: str(seq)}
                    while True:  # a producer retries the same seq until it is acknowledged
                        async with http.post(live, headers=text | producer, data=f"m{seq},") as r:
                            if r.status in (200, 204):
                                break
                            assert r.status == 503, (r.status, await r.text())
                        await asyncio.sleep(0.2)
                received = ""
                while received != "m0,m1,m2,":
                    event = await reader.next(timeout=10.0)
                    assert event is not None, f"the live reader stopped at {received!r}"
                    if event.event == "data":
                        received += event.data
            async with http.get(live, params={"offset": "-1"}) as response:
                assert await response.read() == b"m0,m1,m2,"
    print(f"edge over two origins: a deletion through B purged the edge's cache in {purge:.2f} s")
