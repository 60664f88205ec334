"""The fast lane answers plain reads with exactly the bytes the ordinary handlers send.

Each check asks the same edge twice: once plainly (the lane answers) and once with an
`If-None-Match` that matches nothing, which sends the request the ordinary way without
changing its answer. Only the Date line may differ. Also: metrics count lane answers, and a
request pipelined behind a parked long-poll is answered after it, never before.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, metric, scrape

BINARY = "application/octet-stream"
SLOW = 'If-None-Match: "no-such-etag"\r\n'  # changes the route taken, not the answer

pytestmark = pytest.mark.timeout(60)


class RawClient:
    """One keep-alive connection, requests written as bytes, responses read back as bytes."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    def send(self, target: str, extra: str = "") -> None:
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode())

    async def response(self) -> tuple[bytes, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await self.reader.readexactly(length)
        return head, body

    async def get(self, target: str, extra: str = "") -> tuple[bytes, bytes]:
        self.send(target, extra)
        return await self.response()


def without_date(head: bytes) -> bytes:
    return b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Date: "))


async def test_cache_hit_bytes_and_metrics(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    path = "/v1/stream/fast-catch-up"
    async with aiohttp.ClientSession() as session:
        start = await create(session, edge.url + path, BINARY)
        for _ in range(4):
            await append(session, edge.url + path, BINARY, b"x" * 600)
        target = f"{path}?offset={start}"
        async with RawClient(edge.url) as client:
            await client.get(target)  # a miss: fills the cache
            before = await scrape(session, edge.url)
            # (A request arriving while aiohttp still finishes the previous one goes its way.)
            await asyncio.sleep(0.1)
            fast = await client.get(target)
            slow = await client.get(target, SLOW)
            await asyncio.sleep(0.1)
            again = await client.get(target)
            after = await scrape(session, edge.url)
    assert fast[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert without_date(fast[0]) == without_date(slow[0]) == without_date(again[0])
    assert fast[1] == slow[1] == again[1] and len(fast[1]) == 600  # one record: the chunk ends there
    assert b"Cache-Control: public, max-age=31536000, immutable" in fast[0]
    requests = {"method": "GET", "route": "stream", "status": "200"}
    assert (
        metric(after, "ds_edge_http_requests_total", **requests)
        - metric(before, "ds_edge_http_requests_total", **requests)
        == 3
    )
    assert (
        metric(after, "ds_edge_cache_hits_total", tier="memory")
        - metric(before, "ds_edge_cache_hits_total", tier="memory")
        == 3
    )
    assert metric(after, "ds_edge_upstream_requests_total") == metric(before, "ds_edge_upstream_requests_total")
    lane = metric(after, "ds_edge_fast_lane_answers_total") - metric(before, "ds_edge_fast_lane_answers_total")
    assert lane == 2  # the plain ones; the If-None-Match one went the ordinary way


async def test_long_poll_answers_match_the_ordinary_ones(servers: Servers) -> None:
    origin = servers.origin(long_poll_timeout=2)
    edge = servers.edge(origin.url, long_poll_timeout=2)
    path = "/v1/stream/fast-long-poll"
    async with aiohttp.ClientSession() as session:
        tail = await create(session, edge.url + path, BINARY)
        target = f"{path}?offset={tail}&live=long-poll"
        clients = [RawClient(edge.url) for _ in range(6)]
        for client in clients:
            await client.__aenter__()
        await asyncio.sleep(0.1)  # (the server's side of each connection is ready for a request)
        try:
            # The first request starts the shared poll; the rest join it (most of them parked).
            clients[0].send(target)
            await asyncio.sleep(0.2)
            for client in clients[1:-1]:
                client.send(target)
            clients[-1].send(target, SLOW)
            await asyncio.sleep(0.2)
            await append(session, origin.url + path, BINARY, b"hello")
            answers = [await client.response() for client in clients]
            # After the answer is known: from the recent-poll memory, fast and ordinary.
            recent_fast = await clients[1].get(target)
            recent_slow = await clients[2].get(target, SLOW)
            # Timeouts (204) match too: every client waits at the new tail until the origin gives up.
            next_offset = answers[0][0].split(b"Stream-Next-Offset: ")[1].split(b"\r\n")[0].decode()
            next_target = target.replace(tail, next_offset)
            clients[0].send(next_target)
            await asyncio.sleep(0.2)
            clients[1].send(next_target)
            clients[2].send(next_target, SLOW)
            timeouts = [await client.response() for client in clients[:3]]
        finally:
            for client in clients:
                await client.__aexit__()
        metrics = await scrape(session, edge.url)
    first = without_date(answers[0][0])
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Stream-Cursor: " in first
    for head, body in [*answers, recent_fast, recent_slow]:
        assert without_date(head) == first and body == b"hello"
    assert timeouts[0][0].startswith(b"HTTP/1.1 204 No Content\r\n")
    assert {without_date(head) for head, _ in timeouts} == {without_date(timeouts[0][0])}
    assert metric(metrics, "ds_edge_upstream_requests_total", kind="long_poll") == 2
    assert metric(metrics, "ds_edge_long_poll_waiters") == 0
    assert metric(metrics, "ds_edge_cache_hits_total", tier="recent_poll") >= 2
    # Parked: clients 0-4 (first answer) and 0-1 (timeout); from the recent answers: 1 re-poll.
    assert metric(metrics, "ds_edge_fast_lane_answers_total", kind="long_poll") == 8


async def test_pipelined_request_waits_for_the_parked_one(servers: Servers) -> None:
    origin = servers.origin(long_poll_timeout=5)
    edge = servers.edge(origin.url, long_poll_timeout=5)
    path = "/v1/stream/fast-pipelined"
    async with aiohttp.ClientSession() as session:
        tail = await create(session, edge.url + path, BINARY)
        poll = f"{path}?offset={tail}&live=long-poll"
        async with RawClient(edge.url) as starter, RawClient(edge.url) as client:
            starter.send(poll)
            await asyncio.sleep(0.2)
            client.send(poll)  # parked on the starter's shared poll
            client.send(f"{path}?offset={tail}")  # pipelined: must come second
            await asyncio.sleep(0.2)
            await append(session, origin.url + path, BINARY, b"one")
            first = await client.response()
            second = await client.response()
            await starter.response()
    assert first[1] == b"one" and b"Stream-Cursor: " in first[0]
    assert second[1] == b"one" and b"Stream-Cursor: " not in second[0]
