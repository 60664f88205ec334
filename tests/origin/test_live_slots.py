"""Live slots are held only while their client is there (issue 11, "not free to hold").

A long-poll or SSE request opened and closed at once used to keep its slot for the whole
long-poll timeout (or until the next SSE keep-alive): 50 of them made every long-poll get 503
for 15-20 s with `--max-live-connections 50`. An SSE client that never reads used to hold its
slot for ever (its write blocked past the max age).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.edge.support import metric, scrape, until
from tests.support.processes import ProcessGroup, process_group
from tests.support.raw_clients import open_and_close, open_never_reading

pytestmark = pytest.mark.timeout(90)

SLOTS = 50
API = "/streams/api/v1/streams"
# (label, path and query of a live read waiting at the tail of stream "s" / REST stream "r")
LIVE_READS = [
    ("long-poll", "/v1/stream/s?offset=now&live=long-poll"),
    ("sse", "/v1/stream/s?offset=now&live=sse"),
    ("rest-long-poll", f"{API}/r/tail?mode=long-poll&after=now"),
    ("rest-sse", f"{API}/r/tail?after=now"),
]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, long_poll_timeout=30.0) as g:
        yield g


async def live_connections(http: aiohttp.ClientSession, url: str) -> float:
    return metric(await scrape(http, url), "ds_origin_live_connections")


async def make_streams(http: aiohttp.ClientSession, url: str) -> None:
    async with http.put(url + "/v1/stream/s", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 201
    async with http.post(url + API, json={"name": "r"}) as r:
        assert r.status == 201, await r.text()


@pytest.mark.parametrize(("label", "target"), LIVE_READS, ids=[label for label, _ in LIVE_READS])
async def test_live_reads_closed_at_once_free_their_slots(group: ProcessGroup, label: str, target: str) -> None:
    origin = group.origin("--engine", "memory", "--max-live-connections", str(SLOTS), "--sse-keepalive", "15")
    async with aiohttp.ClientSession() as http:
        await make_streams(http, origin.url)
        await asyncio.gather(*(open_and_close(origin.url, target) for _ in range(SLOTS)))
        closed = time.monotonic()
        # Every slot comes back about at once (it used to take the 30 s long-poll timeout, or
        # the 15 s SSE keep-alive): a generous bound for a loaded machine, far below either.
        await until(lambda: _no_live(http, origin.url), 5.0, f"{label}: slots freed")
        freed_after = time.monotonic() - closed
        # And a live read is served again, not refused with 503.
        poll = asyncio.ensure_future(
            http.get(origin.url + "/v1/stream/s", params={"offset": "now", "live": "long-poll"})
        )
        await asyncio.sleep(0.3)
        async with http.post(origin.url + "/v1/stream/s", data=b"x", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 204
        response = await poll
        assert response.status == 200, (response.status, await response.text())
        response.release()
        text = await scrape(http, origin.url)
        assert metric(text, "ds_origin_rejected_total", reason="live_connections") == 0
    assert freed_after < 5.0


async def _no_live(http: aiohttp.ClientSession, url: str) -> bool:
    return await live_connections(http, url) == 0


@pytest.mark.parametrize(
    ("label", "target"),
    [("sse", "/v1/stream/s?offset=-1&live=sse"), ("rest-sse", f"{API}/r/tail?after=-1")],
    ids=["sse", "rest-sse"],
)
async def test_sse_client_that_never_reads_is_cut_off(group: ProcessGroup, label: str, target: str) -> None:
    origin = group.origin(
        "--engine",
        "memory",
        "--max-live-connections",
        "1",
        "--sse-max-age",
        "30",
        "--sse-write-timeout",
        "2",
    )
    async with aiohttp.ClientSession() as http:
        await make_streams(http, origin.url)
        # Far more than loopback socket buffers absorb (a few MB), so the origin's writes block.
        block = b"y" * (1024 * 1024)
        for _ in range(16):
            async with http.post(origin.url + "/v1/stream/s", data=block, headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 204
            async with http.post(origin.url + f"{API}/r/append", data=b'"' + block[:262_000] + b'"') as r:
                assert r.status == 200, await r.text()
        sock = open_never_reading(origin.url, target)
        try:
            await until(lambda: _live(http, origin.url), 5.0, "the reader holds its slot")
            opened = time.monotonic()
            # Cut off within the write timeout (2 s) plus margin; it used to stay past the 30 s
            # max age and beyond, as long as the client kept the connection.
            await until(lambda: _no_live(http, origin.url), 12.0, f"{label}: a non-reader cut off")
            held = time.monotonic() - opened
            text = await scrape(http, origin.url)
            assert metric(text, "ds_origin_rejected_total", reason="sse_slow_client") == 1
        finally:
            sock.close()
    assert held < 12.0


async def _live(http: aiohttp.ClientSession, url: str) -> bool:
    return await live_connections(http, url) > 0
