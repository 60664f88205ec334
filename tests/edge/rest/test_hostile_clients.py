"""REST through an edge against clients that take without giving: one that never reads its SSE
tail, one that leaves a long-poll, one that varies the query to multiply cache entries."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.rest.support import append, create, upstream, url
from tests.edge.support import metric, scrape, wait_metric
from tests.edge.test_slow_sse_client import drain_until_end
from tests.support.raw_clients import open_never_reading
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.timeout(90)


async def test_a_never_reading_rest_tail_is_cut_off_and_the_others_get_everything(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url, "--sse-client-buffer", "65536", "--sse-write-timeout", "2")
    big = "x" * 60_000
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "hog", "text/plain")
        target = "/streams/api/v1/streams/hog/tail?after=now"
        slow = await asyncio.to_thread(open_never_reading, edge.url, target)
        try:
            async with http.get(url(edge.url, "hog", "tail"), params={"after": "now"}) as r:
                reader = SSEReader(r)
                received: list[str] = []
                # 6 MB: more than loopback buffers and the never-reading client's budget hold. The
                # reading client takes each event before the next append, so it keeps up however
                # busy this machine is; only the client that never reads can fall behind.
                for i in range(100):
                    await append(http, origin.url, "hog", f"{i}:{big}".encode(), **{"Content-Type": "text/plain"})
                    received += [event.data.split(":")[0] for event in await reader.take(1, timeout=30)]
                assert received == [str(i) for i in range(100)]
            cut = await wait_metric(http, edge.url, "ds_edge_slow_client_disconnects_total", 1, 20)
            ended, _ = await asyncio.to_thread(drain_until_end, slow, 10)
            assert cut >= 1, "the never-reading REST tail was not cut off"
            assert ended, "the edge still holds the never-reading client's response open"
        finally:
            slow.close()


async def test_a_long_poll_client_that_leaves_frees_its_place_at_once(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never", long_poll_timeout=30)
    edge = servers.edge(origin.url, long_poll_timeout=30)
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "leaver")
        tail = (await append(http, edge.url, "leaver", [1]))["next_offset"]
        params = {"mode": "long-poll", "after": tail}
        poll = asyncio.ensure_future(http.get(url(edge.url, "leaver", "tail"), params=params))
        assert await wait_metric(http, edge.url, "ds_edge_long_poll_waiters", 1, 10) == 1
        poll.cancel()  # the client goes away long before the 30 s poll would answer
        for _ in range(50):
            if metric(await scrape(http, edge.url), "ds_edge_long_poll_waiters") == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a departed long-poll client still holds its place")


async def test_extra_query_parameters_do_not_multiply_cached_pages(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "keys")
        offsets = (await append(http, edge.url, "keys", [1, 2, 3]))["offsets"]
        before = await upstream(http, edge.url, "rest_read")
        for junk in range(20):
            params = {"after": offsets[0], "limit": "1", "junk": str(junk), "cursor": str(junk)}
            async with http.get(url(edge.url, "keys", "read"), params=params) as r:
                assert r.status == 200
                assert [m["data"] for m in (await r.json())["messages"]] == [2]
        assert await upstream(http, edge.url, "rest_read") - before == 1
