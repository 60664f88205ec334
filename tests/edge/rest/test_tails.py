"""REST tails through a real edge: SSE clients from any offset get exactly the messages the origin
would give them, from one upstream subscription; long-polls at one offset share one upstream
request; closure, heartbeats, resumption and refusals behave as at the origin."""

from __future__ import annotations

import asyncio
import base64
import json
import random

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.rest.support import append, create, upstream, url
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.timeout(90)
JSON = "application/json"
TEXT = "text/plain"
BINARY = "application/octet-stream"


def body(content_type: str, i: int, rng: random.Random) -> bytes:
    if content_type == JSON:
        return json.dumps(
            {"i": i, "text": f"m{i}\n\u00e9\u4e2d", "big": 2**70, "f": 0.1, "pad": "p" * rng.randrange(300)}
        ).encode()
    if content_type == TEXT:
        return f"line {i}\n  indented \u00e9 {'t' * rng.randrange(300)}".encode()
    return rng.randbytes(rng.randrange(1, 500))


async def sse_messages(
    http: aiohttp.ClientSession, target: str, after: str | None, count: int
) -> list[tuple[str, str]]:
    """(id, data) of the first `count` messages of a tail from `after` (None: the start)."""
    params = {"after": after} if after is not None else {}
    async with http.get(target, params=params) as r:
        assert r.status == 200, await r.text()
        reader = SSEReader(r)
        got: list[tuple[str, str]] = []
        while len(got) < count:
            event = await reader.next(timeout=20)
            assert event is not None, f"ended after {len(got)} of {count}"
            assert event.event == "message"
            assert event.id is not None
            got.append((event.id, event.data))
        return got


@pytest.mark.parametrize("content_type", [JSON, TEXT, BINARY])
async def test_sse_clients_from_any_offset_get_exactly_the_origins_messages(
    servers: Servers, content_type: str
) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url)
    rng = random.Random(7)
    name = "tail/" + content_type.split("/")[1]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await create(http, edge.url, name, content_type)
        kind = {"Content-Type": content_type}
        offsets: list[str] = []
        for i in range(30):
            offsets += (await append(http, origin.url, name, body(content_type, i, rng), **kind))["offsets"]
        total = 60
        starts = [None, *rng.sample(offsets, 8), offsets[-1]]
        skips = [offsets.index(after) + 1 if after else 0 for after in starts]
        before = await upstream(http, edge.url, "rest_sse")
        target = url(edge.url, name, "tail")
        clients = [
            asyncio.ensure_future(sse_messages(http, target, after, total - skip))
            for after, skip in zip(starts, skips, strict=True)
        ]
        await asyncio.sleep(0.5)
        for i in range(30, 60):  # live, while the clients catch up and join the hub
            await append(http, origin.url, name, body(content_type, i, rng), **kind)
            await asyncio.sleep(rng.random() * 0.02)
        results = await asyncio.gather(*clients)
        expected = await sse_messages(http, url(origin.url, name, "tail"), None, total)
        for after, skip, got in zip(starts, skips, results, strict=True):
            assert got == expected[skip:], f"client from {after}"
        assert await upstream(http, edge.url, "rest_sse") - before == 1  # one hub fed them all
        if content_type == BINARY:
            assert base64.b64decode(expected[0][1])  # data is base64, as the origin sends it


async def test_long_polls_at_one_offset_share_one_upstream_request(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url, long_poll_timeout=10)
    clients, appends = 200, 5
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await create(http, edge.url, "polled")
        tail = (await append(http, edge.url, "polled", [0]))["next_offset"]

        async def poll() -> list[object]:
            got: list[object] = []
            after = tail
            while len(got) < appends:
                params = {"mode": "long-poll", "after": after}
                async with http.get(url(edge.url, "polled", "tail"), params=params) as r:
                    if r.status == 204:
                        continue
                    assert r.status == 200, await r.text()
                    page = await r.json()
                got += [m["data"] for m in page["messages"]]
                after = page["next_offset"]
            return got

        before = await upstream(http, edge.url, "rest_long_poll")
        polls = [asyncio.ensure_future(poll()) for _ in range(clients)]
        await asyncio.sleep(1.0)
        for i in range(1, appends + 1):
            await append(http, origin.url, "polled", [i])  # (straight to the origin: no write marks)
            await asyncio.sleep(0.5)
        results = await asyncio.gather(*polls)
        assert all(r == [1, 2, 3, 4, 5] for r in results)
        asked = await upstream(http, edge.url, "rest_long_poll") - before
        print(f"\n{clients} REST long-pollers, {appends} appends: {asked:.0f} upstream long-polls")
        assert asked <= appends + 1  # one per append, and the one still waiting


async def test_a_reader_behind_its_own_write_is_not_given_an_older_answer(servers: Servers) -> None:
    """Read-your-writes: a long-poll after an append through this edge sees the append, even when
    a shared poll at that offset began before it."""
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url, long_poll_timeout=5)
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "ryw")
        tail = (await append(http, edge.url, "ryw", [0]))["next_offset"]
        params = {"mode": "long-poll", "after": tail}
        waiting = asyncio.ensure_future(http.get(url(edge.url, "ryw", "tail"), params=params))
        await asyncio.sleep(0.3)
        mine = await append(http, edge.url, "ryw", [1, 2])
        async with http.get(url(edge.url, "ryw", "tail"), params=params) as r:
            page = await r.json()
            assert page["next_offset"] >= mine["next_offset"]
            assert [m["data"] for m in page["messages"]] == [1, 2]
        (await waiting).release()


async def test_closure_ends_sse_and_answers_long_polls(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "closing")
        first = await append(http, edge.url, "closing", [1])
        async with http.get(url(edge.url, "closing", "tail")) as r:
            reader = SSEReader(r)
            assert (await reader.next()).id == first["offsets"][0]  # type: ignore[union-attr]
            closed = await append(http, edge.url, "closing", [2], **{"Stream-Closed": "true"})
            message = await reader.next()
            assert message is not None and message.data == "2"
            end = await reader.next()
            assert end is not None and end.event == "closed"
            assert json.loads(end.data) == {"next_offset": closed["next_offset"]}
            assert await reader.next() is None
        params = {"mode": "long-poll", "after": closed["next_offset"]}
        async with http.get(url(edge.url, "closing", "tail"), params=params) as r:
            page = await r.json()
            assert page["closed"] is True and page["messages"] == []
        async with http.get(url(edge.url, "closing", "tail"), params={"after": closed["next_offset"]}) as r:
            reader = SSEReader(r)
            end = await reader.next()
            assert end is not None and end.event == "closed"


async def test_an_idle_tail_gets_heartbeats_and_resumes_from_last_event_id(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url, "--sse-keepalive", "0.3")
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "idle")
        offsets = (await append(http, edge.url, "idle", [1, 2, 3]))["offsets"]
        async with http.get(url(edge.url, "idle", "tail"), params={"after": offsets[2]}) as r:
            reader = SSEReader(r)
            with pytest.raises(TimeoutError):
                await reader.next(timeout=1.0)
            assert b"\n:\n\n" in reader.raw  # a keep-alive comment (after the retry line)
        headers = {"Last-Event-ID": offsets[0]}  # wins over `after`
        async with http.get(url(edge.url, "idle", "tail"), params={"after": offsets[2]}, headers=headers) as r:
            events = await SSEReader(r).take(2)
            assert [(e.id, e.data) for e in events] == [(offsets[1], "2"), (offsets[2], "3")]


async def test_refusals_are_the_origins(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        for params in ({}, {"mode": "long-poll"}):
            async with http.get(url(edge.url, "missing", "tail"), params=params) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "not_found"
        await create(http, edge.url, "here")
        async with http.get(url(edge.url, "here", "tail"), params={"mode": "nope"}) as r:
            assert r.status == 400
        async with http.get(url(edge.url, "here", "tail"), params={"after": "garbage"}) as r:
            assert r.status == 400
