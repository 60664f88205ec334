"""An edge given several origins (`--origin A --origin B`) fails over between them (edge.origins).

Real processes: origins on the file engine, each with its own data directory, stand in for
origins sharing one PostgreSQL database (a stream a test reads through both is created on both
with the same bytes, so its offsets agree: these tests check routing, not replication).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from plugin_streams.shared import headers as h
from tests.edge.conftest import Servers
from tests.edge.support import append, create, metric, scrape, until
from tests.support.delay_proxy import ThreadedDelayProxy
from tests.support.ports import closed_port, free_ports
from tests.support.sse_reader import SSEReader

TEXT = "text/plain"


def producer(seq: int) -> dict[str, str]:
    return {h.PRODUCER_ID: "failover", h.PRODUCER_EPOCH: "0", h.PRODUCER_SEQ: str(seq)}


async def body(http: aiohttp.ClientSession, url: str) -> bytes:
    """The whole stream at `url`, read with catch-up reads."""
    data, offset = b"", "-1"
    while True:
        async with http.get(url, params={"offset": offset}) as r:
            assert r.status == 200, (r.status, await r.text())
            data += await r.read()
            offset = r.headers[h.STREAM_NEXT_OFFSET]
            if h.STREAM_UP_TO_DATE in r.headers:
                return data


async def edge_metric(http: aiohttp.ClientSession, edge_url: str, name: str, **labels: str) -> float:
    return metric(await scrape(http, edge_url), name, **labels)


async def test_a_refusing_first_origin_is_passed_over_for_every_operation(servers: Servers) -> None:
    origin = servers.origin()
    dead = f"http://127.0.0.1:{closed_port()}"
    edge = servers.edge(dead, "--origin", origin.url)
    url = edge.stream_url + "a"
    async with aiohttp.ClientSession() as http:
        await create(http, url, TEXT)
        await append(http, url, TEXT, b"one,")
        await append(http, url, TEXT, b"two,", producer(0))
        async with http.head(url) as r:
            assert r.status == 200
        assert await body(http, url) == b"one,two,"
        tail = await append(http, url, TEXT, b"three,")
        params = {"offset": tail, "live": "long-poll"}
        async with asyncio.TaskGroup() as group:
            waiting = group.create_task(http.get(url, params=params))
            await asyncio.sleep(0.3)
            await append(http, url, TEXT, b"four,")
        async with waiting.result() as r:
            assert r.status == 200 and await r.read() == b"four,"
        async with http.get(url, params={"offset": "-1", "live": "sse"}) as r:
            assert r.status == 200
            assert await SSEReader(r).first("data") == "one,two,three,four,"
        async with http.get(edge.url + "/readyz") as r:
            assert r.status == 200
        async with http.delete(url) as r:
            assert r.status == 204
        text = await scrape(http, edge.url)
    assert metric(text, "ds_edge_origin_failovers_total") == 1
    assert metric(text, "ds_edge_origin_up", origin=dead) == 0
    assert metric(text, "ds_edge_origin_up", origin=origin.url) == 1
    assert metric(text, "ds_edge_origin_reachable") == 1


async def test_sigkill_of_the_current_origin_moves_everything_to_the_next_and_it_stays_there(
    servers: Servers, tmp_path: Path
) -> None:
    port_a, port_b = free_ports(2)
    a = servers.origin("--port", str(port_a), data_dir=tmp_path / "a")
    b = servers.origin("--port", str(port_b), data_dir=tmp_path / "b")
    edge = servers.edge(a.url, "--origin", b.url)
    read, write = edge.stream_url + "r", edge.stream_url + "w"
    async with aiohttp.ClientSession() as http:
        for origin in (a, b):  # the same streams, the same bytes, on both
            await create(http, origin.stream_url + "r", TEXT)
            tail = await append(http, origin.stream_url + "r", TEXT, b"base,")
            await create(http, origin.stream_url + "w", TEXT)
        await append(http, write, TEXT, b"x1,")
        assert await body(http, a.stream_url + "w") == b"x1," and await body(http, b.stream_url + "w") == b""
        assert await body(http, read) == b"base,"

        # Live readers through the edge, waiting at the tail on A.
        long_poll = asyncio.ensure_future(http.get(read, params={"offset": tail, "live": "long-poll"}))
        sse = await http.get(read, params={"offset": tail, "live": "sse"}, timeout=aiohttp.ClientTimeout(total=60))
        events = SSEReader(sse)
        assert sse.status == 200 and await events.first("control") is not None
        await asyncio.sleep(0.5)  # the long-poll waits upstream on A too

        a.kill()
        killed = time.monotonic()
        await append(http, b.stream_url + "r", TEXT, b"after,")
        async with asyncio.timeout(10):
            answered = await long_poll
        async with answered as r:
            assert r.status == 200 and await r.read() == b"after,"  # its request moved to B
        assert await events.first("data", timeout=10) == "after,"  # the SSE hub reconnected to B
        sse.release()
        moved = time.monotonic() - killed
        assert await body(http, read) == b"base,after,"
        assert moved < 10, moved

        # Writes: an idempotent producer's append and a plain one, each exactly once on B.
        await append(http, write, TEXT, b"p0,", producer(0))
        await append(http, write, TEXT, b"x2,")
        assert await body(http, b.stream_url + "w") == b"p0,x2,"
        text = await scrape(http, edge.url)
        assert metric(text, "ds_edge_origin_failovers_total") == 1
        assert metric(text, "ds_edge_origin_up", origin=a.url) == 0
        assert metric(text, "ds_edge_origin_up", origin=b.url) == 1

        # A comes back: it is up again (probed), but the edge stays on B.
        a = await servers.aorigin("--port", str(port_a), data_dir=tmp_path / "a")

        async def a_is_up() -> bool:
            return await edge_metric(http, edge.url, "ds_edge_origin_up", origin=a.url) == 1

        await until(a_is_up, 10, "the restarted origin to be probed up", interval=0.2)
        await append(http, write, TEXT, b"x3,")
        assert await body(http, b.stream_url + "w") == b"p0,x2,x3,"
        assert await body(http, a.stream_url + "w") == b"x1,"
        assert await edge_metric(http, edge.url, "ds_edge_origin_failovers_total") == 1

        # Until B fails: then back to A.
        b.kill()
        assert await body(http, write) == b"x1,"  # a read, moved to A within the request
        await append(http, write, TEXT, b"x4,")
        assert await body(http, a.stream_url + "w") == b"x1,x4,"
        assert await edge_metric(http, edge.url, "ds_edge_origin_failovers_total") == 2
    print(f"\nlive readers resumed on the next origin {moved:.2f} s after SIGKILL of theirs")


async def test_appends_in_flight_when_the_origin_goes_silent_are_sent_again_only_when_idempotent(
    servers: Servers, tmp_path: Path
) -> None:
    a = servers.origin(data_dir=tmp_path / "a")
    b = servers.origin(data_dir=tmp_path / "b")
    with ThreadedDelayProxy("127.0.0.1", int(a.url.rsplit(":", 1)[1]), 0.01) as link:
        edge = servers.edge(link.url, "--origin", b.url, "--upstream-timeout", "1")
        write = edge.stream_url + "w"
        async with aiohttp.ClientSession() as http:
            for origin in (a, b):
                await create(http, origin.stream_url + "w", TEXT)
            await append(http, write, TEXT, b"x0,")  # through the link, to A
            link.cut()  # A hears nothing more and says nothing more: what was sent has an unknown fate

            async def post(data: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
                async with http.post(write, data=data, headers={"Content-Type": TEXT, **headers}) as r:
                    return r.status, r.headers.get(h.RETRY_AFTER)

            plain, idempotent = await asyncio.gather(post(b"plain,", {}), post(b"p0,", producer(0)))
            assert plain[0] == 503 and plain[1] is not None  # never sent again: its client decides
            assert idempotent == (200, None)  # sent again to B within the same request
            assert await body(http, b.stream_url + "w") == b"p0,"
            link.heal()  # what A was sent may arrive now: at most once, and only there
            await asyncio.sleep(0.5)
            assert (await body(http, a.stream_url + "w")).count(b"plain,") <= 1
            assert b"plain," not in await body(http, b.stream_url + "w")
            text = await scrape(http, edge.url)
    assert metric(text, "ds_edge_origin_failovers_total") == 1
    assert metric(text, "ds_edge_origin_up", origin=link.url) == 0
