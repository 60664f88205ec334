"""The issue's figure: 1,000 REST SSE tailers and 1,000 REST long-poll tailers on one stream
through one edge cost one upstream request per append (at most 1.05), and every one of them gets
every message exactly once, in order."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from plugin_streams.shared import sse
from tests.edge.conftest import Servers
from tests.edge.rest.support import append, create, upstream, url
from tests.edge.support import metric, raise_nofile, scrape

SSE_CLIENTS = 1000
POLL_CLIENTS = 1000
APPENDS = 40

pytestmark = pytest.mark.timeout(240)


async def sse_tailer(http: aiohttp.ClientSession, target: str, after: str, seen: list[int]) -> None:
    async with http.get(target, params={"after": after}, timeout=aiohttp.ClientTimeout(total=None)) as r:
        assert r.status == 200
        parser = sse.Parser()
        async for chunk in r.content.iter_any():
            for event in parser.feed(chunk):
                if event.event == "message":
                    seen.append(int(event.data))
            if len(seen) >= APPENDS:
                return


async def poll_tailer(http: aiohttp.ClientSession, target: str, after: str, seen: list[int]) -> None:
    while len(seen) < APPENDS:
        params = {"mode": "long-poll", "after": after}
        async with http.get(target, params=params, timeout=aiohttp.ClientTimeout(total=None)) as r:
            if r.status == 204:
                continue
            assert r.status == 200, await r.text()
            page = await r.json()
        seen += [m["data"] for m in page["messages"]]
        after = page["next_offset"]


async def wait_for(http: aiohttp.ClientSession, edge_url: str, name: str, count: int, **labels: str) -> None:
    deadline = time.monotonic() + 60
    while metric(await scrape(http, edge_url), name, **labels) < count:
        assert time.monotonic() < deadline, f"{name} {labels} never reached {count}"
        await asyncio.sleep(0.2)


async def test_thousands_of_rest_tailers_cost_one_upstream_request_per_append(servers: Servers) -> None:
    raise_nofile((SSE_CLIENTS + POLL_CLIENTS) * 3 + 1000)
    origin = servers.origin("--fsync", "never", long_poll_timeout=30)
    edge = servers.edge(origin.url, long_poll_timeout=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http, aiohttp.ClientSession() as admin:
        await create(admin, origin.url, "crowd")
        tail = (await append(admin, origin.url, "crowd", [-1]))["next_offset"]
        target = url(edge.url, "crowd", "tail")
        sse_seen: list[list[int]] = [[] for _ in range(SSE_CLIENTS)]
        poll_seen: list[list[int]] = [[] for _ in range(POLL_CLIENTS)]
        tasks = [asyncio.ensure_future(sse_tailer(http, target, tail, s)) for s in sse_seen]
        tasks += [asyncio.ensure_future(poll_tailer(http, target, tail, s)) for s in poll_seen]
        await wait_for(admin, edge.url, "ds_edge_live_clients", SSE_CLIENTS, mode="rest_sse")
        await wait_for(admin, edge.url, "ds_edge_long_poll_waiters", POLL_CLIENTS)
        await asyncio.sleep(1.0)  # every SSE client through its catch-up and onto the hub
        before = await upstream(admin, edge.url)
        started = time.monotonic()
        for i in range(APPENDS):
            await append(admin, origin.url, "crowd", [i])
            await asyncio.sleep(0.25)
        async with asyncio.timeout(120):
            await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        asked = await upstream(admin, edge.url) - before
    expected = list(range(APPENDS))
    missed = sum(len(set(expected) - set(s)) for s in sse_seen + poll_seen)
    duplicated = sum(len(s) - len(set(s)) for s in sse_seen + poll_seen)
    wrong_order = sum(s != sorted(s) for s in sse_seen + poll_seen)
    per_append = asked / APPENDS
    print(
        f"\n{SSE_CLIENTS} REST SSE + {POLL_CLIENTS} REST long-poll tailers, {APPENDS} appends in {elapsed:.1f} s: "
        f"{asked:.0f} upstream requests ({per_append:.3f} per append), {missed} missed, {duplicated} duplicated"
    )
    assert (missed, duplicated, wrong_order) == (0, 0, 0)
    assert per_append <= 1.05
