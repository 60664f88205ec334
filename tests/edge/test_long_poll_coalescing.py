"""1,000 long-polls at one offset through one edge: one upstream long-poll per append, all answered."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, metric, origin_stream_gets, raise_nofile, scrape, until

CLIENTS = 1000
LONG_POLL_TIMEOUT = 15.0  # on both, so that no upstream long-poll times out during the test
TEXT = "text/plain"

pytestmark = pytest.mark.timeout(90)


async def wait_waiters(session: aiohttp.ClientSession, edge_url: str, wanted: int, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    seen = 0.0
    while time.monotonic() < deadline:
        seen = metric(await scrape(session, edge_url), "ds_edge_long_poll_waiters")
        if seen >= wanted:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {seen} of {wanted} long-polls waiting at the edge after {timeout} s")


async def test_thousand_long_polls_share_one_upstream_long_poll_per_append(servers: Servers) -> None:
    raise_nofile(CLIENTS * 3 + 1000)
    origin = servers.origin("--fsync", "never", long_poll_timeout=LONG_POLL_TIMEOUT)
    edge = servers.edge(origin.url, long_poll_timeout=LONG_POLL_TIMEOUT)
    url = edge.stream_url + "fan/in"
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=LONG_POLL_TIMEOUT + 20)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as clients,
        aiohttp.ClientSession() as admin,
    ):
        tail = await create(admin, url, TEXT, b"history;")

        # -- one append, 1,000 waiters --------------------------------------------------------
        edge_before = await edge_upstream(admin, edge.url, "long_poll")
        origin_before = await origin_stream_gets(admin, origin.url)

        async def poll(offset: str) -> tuple[int, bytes, str | None]:
            params = {"offset": offset, "live": "long-poll"}
            async with clients.get(url, params=params) as r:
                return r.status, await r.read(), r.headers.get("Stream-Next-Offset")

        polls = [asyncio.ensure_future(poll(tail)) for _ in range(CLIENTS)]
        try:
            await wait_waiters(admin, edge.url, CLIENTS)
            assert not any(p.done() for p in polls), "a long-poll returned before anything was appended"
            new_tail = await append(admin, url, TEXT, b"first append")
            async with asyncio.timeout(30):
                results = await asyncio.gather(*polls)
        finally:
            for p in polls:
                p.cancel()
        statuses = {r[0] for r in results}
        assert statuses == {200}, f"statuses {statuses}"
        assert {r[1] for r in results} == {b"first append"}
        assert {r[2] for r in results} == {new_tail}
        edge_after = await edge_upstream(admin, edge.url, "long_poll")
        origin_after = await origin_stream_gets(admin, origin.url)
        print(
            f"\n1 append, {CLIENTS} waiters: upstream long-polls {edge_after - edge_before:.0f} (edge counter), "
            f"origin GETs {origin_after - origin_before:.0f}"
        )
        assert edge_after - edge_before == 1
        assert origin_after - origin_before == 1

        # -- three appends in sequence; every reader re-polls at the Stream-Next-Offset it got --
        appends = [b"second append", b"third\nappend", b"fourth append \xc3\xa9"]
        received: list[list[bytes]] = [[] for _ in range(CLIENTS)]
        no_content = 0

        async def reader(index: int, offset: str) -> None:
            nonlocal no_content
            while len(received[index]) < len(appends):
                status, body, next_offset = await poll(offset)
                if status == 204:
                    no_content += 1
                else:
                    assert status == 200, status
                    received[index].append(body)
                assert next_offset is not None
                offset = next_offset

        edge_before = await edge_upstream(admin, edge.url, "long_poll")
        origin_before = await origin_stream_gets(admin, origin.url)
        readers = [asyncio.ensure_future(reader(i, new_tail)) for i in range(CLIENTS)]
        started = time.monotonic()
        try:
            for k, body in enumerate(appends):
                # Every reader has the previous append and is waiting again at the new tail.
                await until(lambda k=k: min(len(r) for r in received) >= k, 20, f"every reader to get append {k}")
                await wait_waiters(admin, edge.url, CLIENTS)
                await append(admin, url, TEXT, body)
            async with asyncio.timeout(30):
                await asyncio.gather(*readers)
        finally:
            for task in readers:
                task.cancel()
        elapsed = time.monotonic() - started
        edge_after = await edge_upstream(admin, edge.url, "long_poll")
        origin_after = await origin_stream_gets(admin, origin.url)
        assert all(r == appends for r in received), "a reader missed, repeated or reordered an append"
        per_append = (edge_after - edge_before) / len(appends)
        origin_per_append = (origin_after - origin_before) / len(appends)
        print(
            f"3 appends, {CLIENTS} re-polling readers in {elapsed:.1f} s: upstream long-polls per append "
            f"{per_append:.2f} (edge counter), origin GETs per append {origin_per_append:.2f}, "
            f"client 204s {no_content}"
        )
        assert per_append <= 1.05
        assert origin_per_append <= 1.05


async def test_long_poll_at_now_only_returns_data_appended_after_the_request(servers: Servers) -> None:
    """`offset=now&live=long-poll` MUST begin waiting for new data (PROTOCOL.md, sentinel `now`).

    The writer appends at the origin directly (another edge, another worker, a backend job): an
    answer the edge kept from an earlier `now` poll is history for a client that arrives later.
    """
    origin = servers.origin("--fsync", "never", long_poll_timeout=5)
    edge = servers.edge(origin.url, long_poll_timeout=5)
    origin_url, edge_url = origin.stream_url + "now/poll", edge.stream_url + "now/poll"
    async with aiohttp.ClientSession() as session:
        await create(session, origin_url, TEXT, b"old;")

        async def poll_now() -> tuple[int, bytes]:
            async with session.get(edge_url, params={"offset": "now", "live": "long-poll"}) as r:
                return r.status, await r.read()

        first = asyncio.ensure_future(poll_now())
        await asyncio.sleep(0.5)
        await append(session, origin_url, TEXT, b"first;")
        async with asyncio.timeout(10):
            assert await first == (200, b"first;")

        second = asyncio.ensure_future(poll_now())
        await asyncio.sleep(0.5)
        early = second.result() if second.done() else None
        await append(session, origin_url, TEXT, b"second;")
        async with asyncio.timeout(10):
            answer = await second
        assert early is None, f"a later offset=now long-poll was answered at once with old data: {early}"
        assert answer == (200, b"second;")


async def test_long_poll_from_the_start_after_delete_and_recreate_elsewhere(servers: Servers) -> None:
    """A stream deleted (and re-created) at the origin, not through this edge: a long-poll from `-1`
    must see 404, then the new incarnation, never the deleted stream's data.

    The origin marks a long-poll answer from `-1` `max-age=1, stale-while-revalidate=1`; the checks
    run 2.5 s after the first answer, so an edge that keeps it no longer than that passes.
    """
    origin = servers.origin("--fsync", "never", long_poll_timeout=3)
    edge = servers.edge(origin.url, long_poll_timeout=3)
    origin_url, edge_url = origin.stream_url + "reborn", edge.stream_url + "reborn"
    params = {"offset": "-1", "live": "long-poll"}
    async with aiohttp.ClientSession() as session:
        await create(session, origin_url, TEXT, b"old incarnation")
        async with session.get(edge_url, params=params) as r:
            assert (r.status, await r.read()) == (200, b"old incarnation")
            cache_control = r.headers["Cache-Control"]
        async with session.delete(origin_url) as r:
            assert r.status == 204
        await asyncio.sleep(2.5)
        async with session.get(edge_url, params=params) as r:
            deleted = (r.status, await r.read())
        new_first = await create(session, origin_url, TEXT, b"new")
        await asyncio.sleep(2.5)
        async with session.get(edge_url, params=params) as r:
            recreated = (r.status, await r.read(), r.headers.get("Stream-Next-Offset"))
    assert deleted[0] == 404, f"deleted stream still answered: {deleted} (first answer: {cache_control!r})"
    assert recreated == (200, b"new", new_first), f"re-created stream answered with {recreated}"
