"""Catch-up reads no cache tier answers, through the fast lane (edge.parked_reads): parked on the
shared upstream read, answered with exactly the handlers' bytes, and given back to the handlers
for anything but a 200."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, metric, scrape
from tests.edge.test_fast_reads import SLOW, RawClient, without_date

BINARY = "application/octet-stream"

pytestmark = pytest.mark.timeout(60)


async def test_a_tail_read_through_the_lane_is_the_handlers_answer(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    path = "/v1/stream/parked-tail"
    async with aiohttp.ClientSession() as session:
        start = await create(session, edge.url + path, BINARY)
        await append(session, edge.url + path, BINARY, b"t" * 300)
        for target in (f"{path}?offset={start}", f"{path}?offset=-1", path):
            async with RawClient(edge.url) as client:
                before = await scrape(session, edge.url)
                fast = await client.get(target)
                await asyncio.sleep(0.1)  # (a request arriving while aiohttp finishes the last goes its way)
                slow = await client.get(target, SLOW)
                after = await scrape(session, edge.url)
            assert fast[0].startswith(b"HTTP/1.1 200 OK\r\n"), target
            assert b"Stream-Up-To-Date: true" in fast[0]
            assert without_date(fast[0]) == without_date(slow[0]), target
            assert fast[1] == slow[1] == b"t" * 300
            lane = metric(after, "ds_edge_fast_lane_answers_total", kind="catch_up")
            assert lane - metric(before, "ds_edge_fast_lane_answers_total", kind="catch_up") == 1
            upstream = metric(after, "ds_edge_upstream_requests_total", kind="catch_up")
            assert upstream - metric(before, "ds_edge_upstream_requests_total", kind="catch_up") == 2  # never cached


async def test_concurrent_tail_readers_share_one_upstream_read(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    path = "/v1/stream/parked-shared"
    readers = 20
    async with aiohttp.ClientSession() as session:
        start = await create(session, edge.url + path, BINARY)
        await append(session, edge.url + path, BINARY, b"s" * 1000)
        clients = [await RawClient(edge.url).__aenter__() for _ in range(readers)]
        try:
            asked = await edge_upstream(session, edge.url, "catch_up")
            for client in clients:  # all in one go: they find each other's flight
                client.send(f"{path}?offset={start}")
            answers = await asyncio.gather(*(client.response() for client in clients))
        finally:
            for client in clients:
                await client.__aexit__()
        shared = await edge_upstream(session, edge.url, "catch_up") - asked
    assert all(body == b"s" * 1000 and head.startswith(b"HTTP/1.1 200 OK\r\n") for head, body in answers)
    assert 1 <= shared < readers / 2


async def test_an_error_is_given_back_to_the_handlers(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    path = "/v1/stream/parked-missing"
    async with aiohttp.ClientSession() as session:
        start = await create(session, edge.url + path, BINARY)
        async with session.delete(origin.url + path) as r:  # past the edge: it cannot know
            assert r.status == 204
        async with session.get(f"{origin.url}{path}?offset={start}") as r:
            expected_status, expected_body = r.status, await r.read()
        assert expected_status == 404
        async with RawClient(edge.url) as client:
            client.send(f"{path}?offset={start}")
            head = await client.reader.readuntil(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
            body = await client.reader.readexactly(length)
            # The connection goes on: the next read is answered in order.
            followed = await client.get(f"{path}?offset={start}")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert body == expected_body
    assert followed[0].startswith(b"HTTP/1.1 404 ")


async def test_a_reader_that_leaves_does_not_stop_the_others(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    path = "/v1/stream/parked-leaving"
    async with aiohttp.ClientSession() as session:
        start = await create(session, edge.url + path, BINARY)
        await append(session, edge.url + path, BINARY, b"l" * 500)
        leaving, staying = RawClient(edge.url), RawClient(edge.url)
        await leaving.__aenter__()
        async with staying:
            leaving.send(f"{path}?offset={start}")
            staying.send(f"{path}?offset={start}")
            leaving.writer.transport.abort()
            head, body = await staying.response()
            again = await staying.get(f"{path}?offset={start}")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"l" * 500
    assert again[1] == b"l" * 500
