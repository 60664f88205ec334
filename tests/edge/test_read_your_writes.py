"""Read-your-writes through the edge, while other readers keep the same URL's coalescing busy."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, metric, scrape

TEXT = "text/plain"
ROUNDS = 50
HAMMERS = 8

pytestmark = pytest.mark.timeout(60)


async def hammer(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, counter: list[int]) -> None:
    while not stop.is_set():
        async with session.get(url, params={"offset": "-1"}) as r:
            assert r.status == 200
            await r.read()
            counter[0] += 1


async def read_your_writes(edge_url: str, url: str, *, fresh_connections: bool) -> tuple[list[str], int, float]:
    """Append then read `offset=-1` ROUNDS times; returns the failures, reads and upstream catch-ups."""
    failures: list[str] = []
    counter = [0]
    stop = asyncio.Event()
    readers = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=fresh_connections))
    writer = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=fresh_connections))
    async with readers, writer:
        await create(writer, url, TEXT, b"start;")
        before = await edge_upstream(writer, edge_url, "catch_up")
        hammers = [asyncio.ensure_future(hammer(readers, url, stop, counter)) for _ in range(HAMMERS)]
        try:
            await asyncio.sleep(0.2)
            for i in range(ROUNDS):
                mine = f"write-{i};".encode()
                await append(writer, url, TEXT, mine)
                async with writer.get(url, params={"offset": "-1"}) as r:
                    assert r.status == 200
                    body = await r.read()
                if not body.endswith(mine):
                    failures.append(f"round {i}: read after the append ends with {body[-24:]!r}")
                await asyncio.sleep(0.005)
        finally:
            stop.set()
            await asyncio.gather(*hammers, return_exceptions=True)
        after = await edge_upstream(writer, edge_url, "catch_up")
    return failures, counter[0] + ROUNDS, after - before


async def test_read_your_writes_through_a_busy_edge(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url)
    url = edge.stream_url + "ryw/one"
    failures, reads, upstream = await read_your_writes(edge.url, url, fresh_connections=False)
    print(
        f"\n{ROUNDS} append+read rounds, {reads} reads of offset=-1 through the edge, "
        f"{upstream:.0f} upstream catch-ups ({upstream / reads:.2f} per read)"
    )
    assert not failures, "\n".join(failures)
    assert upstream < reads, "no read was coalesced: the test did not exercise coalescing"


async def test_read_your_writes_across_edge_workers(servers: Servers) -> None:
    """`--workers 2` with a new connection per request (a browser's pool, a load balancer): the
    append and the read that follows it may land on different workers, each coalescing on its own."""
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url, "--workers", "2")
    url = edge.stream_url + "ryw/workers"
    failures, _, _ = await read_your_writes(edge.url, url, fresh_connections=True)
    async with aiohttp.ClientSession() as session:
        text = await scrape(session, edge.url)
    print(
        f"\n{ROUNDS} rounds over fresh connections to 2 workers: {len(failures)} stale reads; "
        f"{metric(text, 'ds_edge_http_requests_total')} requests seen by the worker that answered /metrics"
    )
    assert not failures, f"{len(failures)} of {ROUNDS} reads missed the reader's own append:\n" + "\n".join(
        failures[:5]
    )
