"""The REST API at a regional replica: describe, read and tail from the replica; writes read back there.

The origin is 50 ms away through the delay proxy (tests/regions/conftest.py). That the region
answers a read itself is shown twice: its `ds_region_local_reads` counter rises, and the reads
keep working (long-polls waiting, SSE flowing) while the link to the origin is cut.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.edge.support import metric, scrape, until, wait_metric
from tests.regions.conftest import Regions
from tests.rest.helpers import append, create, read, read_all, stream_url
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.timeout(120)
API = "/streams/api/v1"


async def _local_reads(session: aiohttp.ClientSession, edge_url: str) -> float:
    return metric(await scrape(session, edge_url), "ds_region_local_reads_total", region="eu")


async def _describe(session: aiohttp.ClientSession, api: str, name: str) -> tuple[int, dict[str, Any]]:
    async with session.get(stream_url(api, name)) as r:
        return r.status, dict(await r.json())


async def _served_here(session: aiohttp.ClientSession, edge_url: str, name: str, next_offset: str) -> bool:
    """Whether the region describes `name` itself (a local read), up to `next_offset`."""
    before = await _local_reads(session, edge_url)
    status, described = await _describe(session, edge_url + API, name)
    local = await _local_reads(session, edge_url) > before
    return local and status == 200 and described["next_offset"] == next_offset


async def _sse_messages(session: aiohttp.ClientSession, api: str, name: str, after: str, count: int) -> list[Any]:
    """`count` messages of an SSE tail from `after`, as (id, data) pairs."""
    async with session.get(stream_url(api, name, "tail"), params={"after": after}) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream", (r.status, await r.text())
        reader = SSEReader(r)
        messages: list[Any] = []
        while len(messages) < count:
            event = await reader.next(10)
            assert event is not None, f"the tail ended after {messages}"
            if event.event in ("", "message"):
                messages.append((event.id, json.loads(event.data)))
        return messages


async def test_rest_reads_and_tails_are_answered_from_the_replica_even_with_the_link_cut(regions: Regions) -> None:
    replica = regions.replica("--replicate", "**")
    origin_api, region_api = regions.origin.url + API, replica.url + API
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, origin_api, "rest/a")
        for n in range(3):
            last = await append(session, origin_api, "rest/a", {"n": n})
        tail = last["next_offset"]
        await until(lambda: _served_here(session, replica.url, "rest/a", tail), 10, "the region to serve the stream")

        # The same pages as the origin's: messages, offsets, ETag and Cache-Control.
        before = await _local_reads(session, replica.url)
        pages = []
        for api in (origin_api, region_api):
            async with session.get(stream_url(api, "rest/a", "read"), params={"after": "-1", "limit": "2"}) as r:
                assert r.status == 200
                pages.append((await r.json(), r.headers["ETag"], r.headers["Cache-Control"]))
        assert pages[0] == pages[1]
        assert await read_all(session, region_api, "rest/a") == await read_all(session, origin_api, "rest/a")
        assert await _local_reads(session, replica.url) == before + 2

        # A long-poll in the region is woken by replication of an append at the origin.
        poll = asyncio.ensure_future(_long_poll(session, region_api, "rest/a", tail))
        await asyncio.sleep(0.3)
        appended = await append(session, origin_api, "rest/a", {"n": 3})
        status, body = await poll
        assert status == 200 and [m["data"] for m in body["messages"]] == [{"n": 3}]
        assert body["next_offset"] == appended["next_offset"]

        # The link is cut: the region still describes, reads and tails what it holds.
        regions.link.cut()
        try:
            await until(lambda: _link_down(session, replica.url), 15, "the region to see the link down")
            status, described = await _describe(session, region_api, "rest/a")
            assert status == 200 and described["next_offset"] == appended["next_offset"]
            assert [m["data"] for m in await read_all(session, region_api, "rest/a")] == [{"n": n} for n in range(4)]
            messages = await _sse_messages(session, region_api, "rest/a", "-1", 4)
            assert [data for _, data in messages] == [{"n": n} for n in range(4)]
            assert messages[-1][0] == appended["next_offset"]  # each event's id is the message's offset
            status, _ = await _long_poll(session, region_api, "rest/a", appended["next_offset"])
            assert status == 204  # waited the long-poll timeout here, not an error from a dead origin
        finally:
            regions.link.heal()


async def _long_poll(
    session: aiohttp.ClientSession, api: str, name: str, after: str
) -> tuple[int, dict[str, Any] | None]:
    params = {"mode": "long-poll", "after": after}
    async with session.get(stream_url(api, name, "tail"), params=params) as r:
        return r.status, (await r.json()) if r.status == 200 else None


async def _link_down(session: aiohttp.ClientSession, edge_url: str) -> bool:
    return metric(await scrape(session, edge_url), "ds_region_link_up", region="eu") == 0


async def test_rest_writes_through_the_region_are_read_back_there_at_once(regions: Regions) -> None:
    replica = regions.replica("--replicate", "**")
    api = replica.url + API
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        before = await _local_reads(session, replica.url)
        async with session.post(api + "/streams", json={"name": "ryw/rest", "content_type": "text/plain"}) as r:
            assert r.status == 201, await r.text()
            assert r.headers["Location"].endswith("/streams/api/v1/streams/ryw%2Frest")
        status, described = await _describe(session, api, "ryw/rest")  # at once: no wait for replication
        assert status == 200 and described["content_type"] == "text/plain"
        for i in range(10):
            appended = await append(session, api, "ryw/rest", f"<{i}>".encode())
            page = await read(session, api, "ryw/rest", after="-1", limit="1000")
            assert page["next_offset"] == appended["next_offset"]
            assert page["messages"][-1] == {"offset": appended["offsets"][-1], "data": f"<{i}>"}
        async with session.post(stream_url(api, "ryw/rest", "append"), headers={"Stream-Closed": "true"}) as r:
            assert r.status == 200 and (await r.json())["closed"] is True
        assert (await read(session, api, "ryw/rest", after="-1", limit="1000"))["closed"] is True
        assert await _local_reads(session, replica.url) >= before + 12  # the describe and the reads were local
        async with session.delete(stream_url(api, "ryw/rest")) as r:
            assert r.status == 204
        async with session.get(stream_url(api, "ryw/rest", "read")) as r:
            assert r.status == 404 and (await r.json())["error"]["code"]
        async with session.get(stream_url(regions.origin.url + API, "ryw/rest")) as r:
            assert r.status == 404  # gone at the origin too


async def test_a_stream_the_region_does_not_hold_is_replicated_on_its_first_rest_read(regions: Regions) -> None:
    replica = regions.replica()  # no --replicate: only what is read here
    origin_api, region_api = regions.origin.url + API, replica.url + API
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, origin_api, "lazy")
        await append(session, origin_api, "lazy", {"first": True})
        assert metric(await scrape(session, replica.url), "ds_region_streams_replicated", region="eu") == 0
        before = await _local_reads(session, replica.url)
        first = await read(session, region_api, "lazy", after="-1")  # answered the ordinary edge way
        assert [m["data"] for m in first["messages"]] == [{"first": True}]
        assert await _local_reads(session, replica.url) == before
        await wait_metric(session, replica.url, "ds_region_streams_replicated", 1, 10, region="eu")
        appended = await append(session, origin_api, "lazy", {"second": True})

        async def region_has_it() -> bool:
            page = await read(session, region_api, "lazy", after="-1")
            return bool(page["next_offset"] == appended["next_offset"])

        await until(region_has_it, 10, "the region's copy to follow the origin")
        assert await _local_reads(session, replica.url) > before


async def test_a_stream_the_region_does_not_hold_is_refused_with_503_while_the_link_is_cut(regions: Regions) -> None:
    replica = regions.replica()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, regions.origin.url + API, "elsewhere")
        await until(lambda: _link_up(session, replica.url), 10, "the region to see the link up")
        regions.link.cut()
        try:
            await until(lambda: _link_down(session, replica.url), 15, "the region to see the link down")
            async with session.get(stream_url(replica.url + API, "elsewhere", "read")) as r:
                assert r.status == 503 and "Retry-After" in r.headers
                assert (await r.json())["error"]["code"]
            async with session.post(stream_url(replica.url + API, "elsewhere", "append"), data=b"[1]") as r:
                assert r.status == 503 and "Retry-After" in r.headers
        finally:
            regions.link.heal()


async def _link_up(session: aiohttp.ClientSession, edge_url: str) -> bool:
    return metric(await scrape(session, edge_url), "ds_region_link_up", region="eu") == 1
