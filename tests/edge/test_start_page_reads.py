"""Reads from the start through a real edge (edge.start_pages): the first answer of every walk
is kept for the second the origin allows, never when it reaches the tail, never past a deletion
through the edge, and is byte for byte what the origin and the ordinary handlers answer."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, metric, scrape
from tests.edge.test_fast_reads import SLOW, RawClient

BINARY = "application/octet-stream"
JSON = "application/json"
RECORD = 600  # two do not fit a 1024-byte chunk: a read from the start stops after one

pytestmark = pytest.mark.timeout(60)


def _record(content_type: str, n: int) -> bytes:
    if content_type == JSON:
        return json.dumps({"n": n, "pad": "p" * (RECORD - 20)}).encode()
    return bytes([n]) * RECORD


def _head_lines(head: bytes) -> dict[bytes, bytes]:
    """Header lines by lower-cased name, less those that change from one answer to the next."""
    lines = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b": ")
        if name and name.lower() not in (b"date", b"age"):
            lines[name.lower()] = value
    return lines


async def _origin_answer(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, str], bytes]:
    async with session.get(url) as r:
        assert r.status == 200
        return {k.lower(): v for k, v in r.headers.items()}, await r.read()


@pytest.mark.parametrize("content_type", [BINARY, JSON])
async def test_a_walk_from_the_start_is_answered_by_the_edge(servers: Servers, content_type: str) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    path = "/v1/stream/start-page"
    async with aiohttp.ClientSession() as session:
        await create(session, edge.url + path, content_type)
        for n in range(3):
            await append(session, edge.url + path, content_type, _record(content_type, n))
        origin_headers, origin_body = await _origin_answer(session, f"{origin.url}{path}?offset=-1")
        assert "stream-up-to-date" not in origin_headers  # a complete first chunk
        async with RawClient(edge.url) as client:
            first = await client.get(f"{path}?offset=-1")  # asks the origin, keeps the answer
            asked = await edge_upstream(session, edge.url, "catch_up")
            before = await scrape(session, edge.url)
            await asyncio.sleep(0.1)  # (a request arriving while aiohttp finishes the last goes its way)
            fast = await client.get(f"{path}?offset=-1")
            bare = await client.get(path)  # no offset: the start too
            slow = await client.get(f"{path}?offset=-1", SLOW)
            after = await scrape(session, edge.url)
    assert metric(after, "ds_edge_upstream_requests_total", kind="catch_up") == asked
    lane = metric(after, "ds_edge_fast_lane_answers_total") - metric(before, "ds_edge_fast_lane_answers_total")
    assert lane == 2  # the plain ones; the If-None-Match one went the ordinary way, from the page too
    hits = metric(after, "ds_edge_cache_hits_total", tier="memory") - metric(
        before, "ds_edge_cache_hits_total", tier="memory"
    )
    assert hits == 3
    for head, body in (first, fast, bare, slow):
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body == origin_body
    assert _head_lines(fast[0]) == _head_lines(bare[0]) == _head_lines(slow[0]) == _head_lines(first[0])
    kept = _head_lines(fast[0])
    for name in ("stream-next-offset", "etag", "cache-control", "content-type", "surrogate-key"):
        assert kept[name.encode()] == origin_headers[name].encode(), name
    assert b"stream-up-to-date" not in kept
    assert b"\r\nAge: 0\r\n" in fast[0]


async def test_an_answer_that_reaches_the_tail_is_never_kept(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    path = "/v1/stream/start-at-tail"
    async with aiohttp.ClientSession() as session:
        await create(session, edge.url + path, BINARY)
        await append(session, edge.url + path, BINARY, b"a" * 100)
        async with RawClient(edge.url) as client:
            head, body = await client.get(f"{path}?offset=-1")
            assert b"Stream-Up-To-Date: true" in head and body == b"a" * 100
            await append(session, origin.url + path, BINARY, b"b" * 100)  # past the edge
            await asyncio.sleep(0.1)
            head, body = await client.get(f"{path}?offset=-1")
    assert body == b"a" * 100 + b"b" * 100  # at once, not a second later


async def test_a_stream_deleted_and_created_again_through_the_edge_starts_anew(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    path = "/v1/stream/start-recreated"
    async with aiohttp.ClientSession() as session:
        await create(session, edge.url + path, BINARY)
        for n in range(2):
            await append(session, edge.url + path, BINARY, _record(BINARY, n))
        async with RawClient(edge.url) as client:
            await client.get(f"{path}?offset=-1")
            await asyncio.sleep(0.1)
            _, kept = await client.get(f"{path}?offset=-1")
            assert kept == _record(BINARY, 0)
            async with session.delete(edge.url + path) as r:
                assert r.status == 204
            await create(session, edge.url + path, BINARY)
            for n in (7, 8):
                await append(session, edge.url + path, BINARY, _record(BINARY, n))
            await asyncio.sleep(0.1)
            _, body = await client.get(f"{path}?offset=-1")
    assert body == _record(BINARY, 7)


async def test_a_start_page_lives_no_longer_than_the_origin_allows(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    path = "/v1/stream/start-expires"
    async with aiohttp.ClientSession() as session:
        await create(session, edge.url + path, BINARY)
        for n in range(2):
            await append(session, edge.url + path, BINARY, _record(BINARY, n))
        async with RawClient(edge.url) as client:
            head, _ = await client.get(f"{path}?offset=-1")
            assert b"max-age=1," in head  # shared.caching.TAIL_MAX_AGE
            asked = await edge_upstream(session, edge.url, "catch_up")
            await asyncio.sleep(0.1)
            await client.get(f"{path}?offset=-1")
            assert await edge_upstream(session, edge.url, "catch_up") == asked
            await asyncio.sleep(1.2)
            head, body = await client.get(f"{path}?offset=-1")
            assert await edge_upstream(session, edge.url, "catch_up") == asked + 1
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == _record(BINARY, 0)
