"""An edge counts a live client only while it is there (issue 11, "not free to hold").

SSE clients and long-polls waiting on a shared upstream poll that close at once used to stay
counted (and held their hub subscription or flight place) until the next keep-alive or until the
upstream poll returned, and the edge's shared upstream polls they no longer waited for held the
origin's live slots. Now they are let go when their connection closes, and so are the slots.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, metric, scrape, until
from tests.support.raw_clients import open_and_close

pytestmark = pytest.mark.timeout(90)

CLIENTS = 50
TEXT = "text/plain"


async def counted(http: aiohttp.ClientSession, url: str) -> float:
    text = await scrape(http, url)
    return metric(text, "ds_edge_live_clients") + metric(text, "ds_edge_long_poll_waiters")


@pytest.mark.parametrize(
    ("label", "query", "headers"),
    [
        ("sse", "offset=now&live=sse", ""),
        # (Authorization takes the handlers' way rather than the fast lane's.)
        ("long-poll", "offset=now&live=long-poll", "Authorization: Bearer someone\r\n"),
    ],
    ids=["sse", "long-poll"],
)
async def test_clients_that_close_at_once_are_let_go(servers: Servers, label: str, query: str, headers: str) -> None:
    origin = servers.origin("--engine", "memory", long_poll_timeout=30)
    edge = servers.edge(origin.url, "--sse-keepalive", "15", long_poll_timeout=30)
    async with aiohttp.ClientSession() as http:
        await create(http, origin.stream_url + "s", TEXT)
        target = f"/v1/stream/s?{query}"
        opened = [asyncio.ensure_future(open_and_close(edge.url, target, headers, linger=1.0)) for _ in range(CLIENTS)]
        await until(lambda: _counted_at_least(http, edge.url, CLIENTS), 10.0, f"{label}: clients counted")
        await asyncio.gather(*opened)
        closed = time.monotonic()
        # Let go about at once: it used to take the 15 s keep-alive or the 30 s upstream poll.
        await until(lambda: _none_counted(http, edge.url), 5.0, f"{label}: clients let go")
    assert time.monotonic() - closed < 5.0


async def _counted_at_least(http: aiohttp.ClientSession, url: str, n: int) -> bool:
    return await counted(http, url) >= n


async def _none_counted(http: aiohttp.ClientSession, url: str) -> bool:
    return await counted(http, url) == 0


async def test_an_upstream_long_poll_nobody_waits_for_frees_its_origin_slot(servers: Servers) -> None:
    """Long-polls on 50 streams through an edge, closed at once, used to keep 50 of the origin's
    live slots for the whole long-poll timeout (the edge's shared upstream polls went on)."""
    origin = servers.origin("--engine", "memory", "--max-live-connections", str(CLIENTS), long_poll_timeout=30)
    edge = servers.edge(origin.url, long_poll_timeout=30)
    async with aiohttp.ClientSession() as http:
        for i in range(CLIENTS):
            await create(http, origin.stream_url + f"s{i}", TEXT)
        # (Authorization takes the handlers' way; the fast lane's parked clients: the next test.)
        auth = "Authorization: Bearer someone\r\n"
        await asyncio.gather(
            *(
                open_and_close(edge.url, f"/v1/stream/s{i}?offset=now&live=long-poll", auth, linger=1.0)
                for i in range(CLIENTS)
            )
        )
        closed = time.monotonic()
        await until(lambda: _origin_idle(http, origin.url), 5.0, "origin slots freed")
    assert time.monotonic() - closed < 5.0


async def test_a_parked_fast_lane_long_poll_that_leaves_frees_its_origin_slot(servers: Servers) -> None:
    """Plain anonymous long-polls at an explicit offset are parked by the edge's fast lane, with no
    handler task to cancel. 50 of them on 50 streams, closed at once, used to hold 50 of the origin's
    live slots for the whole long-poll timeout (29.01 s measured): no other live read was served."""
    origin = servers.origin("--engine", "memory", "--max-live-connections", str(CLIENTS), long_poll_timeout=30)
    edge = servers.edge(origin.url, long_poll_timeout=30)
    async with aiohttp.ClientSession() as http:
        tails = [await create(http, origin.stream_url + f"s{i}", TEXT) for i in range(CLIENTS)]
        probe_tail = await create(http, origin.stream_url + "probe", TEXT)
        opened = [
            asyncio.ensure_future(open_and_close(edge.url, f"/v1/stream/s{i}?offset={tail}&live=long-poll", linger=1.0))
            for i, tail in enumerate(tails)
        ]
        await until(lambda: _counted_at_least(http, edge.url, CLIENTS), 10.0, "parked clients counted")
        await asyncio.gather(*opened)
        closed = time.monotonic()
        await until(lambda: _origin_idle(http, origin.url), 5.0, "origin slots freed")
        await until(lambda: _none_counted(http, edge.url), 5.0, "edge waiters let go")
        served = await _origin_serves_a_long_poll(http, origin.stream_url + "probe", probe_tail)
    assert time.monotonic() - closed < 5.0
    assert served == 200


async def _origin_idle(http: aiohttp.ClientSession, url: str) -> bool:
    return metric(await scrape(http, url), "ds_origin_live_connections") == 0


async def _origin_serves_a_long_poll(http: aiohttp.ClientSession, url: str, tail: str) -> int:
    """The status of a long-poll straight to the origin, woken by an append if it was let in."""
    poll = asyncio.ensure_future(http.get(f"{url}?offset={tail}&live=long-poll"))
    done, _ = await asyncio.wait([poll], timeout=0.5)
    if not done:
        await append(http, url, TEXT, b"x")  # waiting in a live slot: give it an answer
    async with await poll as response:
        return response.status
