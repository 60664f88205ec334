"""Reads at older offsets are answered from the edge's chunk cache, exactly as the origin answers them."""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp
import pytest

from plugin_streams.shared import jsonmode
from tests.edge.conftest import Servers
from tests.edge.support import (
    append,
    create,
    edge_upstream,
    metric,
    offset_at,
    origin_stream_gets,
    scrape,
    split_offset,
)

BINARY = "application/octet-stream"
JSON = "application/json"
CHUNK = 64 * 1024  # the origin's default --chunk-size
COMPARED = ("Content-Type", "Stream-Next-Offset", "ETag", "Cache-Control", "Stream-Up-To-Date", "Stream-Closed")

pytestmark = pytest.mark.timeout(60)


def payloads(content_type: str, count: int, size: int) -> list[bytes]:
    rng = random.Random(7)
    if content_type == JSON:
        return [json.dumps({"i": i, "pad": "x" * (size - 30)}).encode() for i in range(count)]
    return [rng.randbytes(size) for _ in range(count)]


async def fill(session: aiohttp.ClientSession, url: str, content_type: str, count: int = 60, size: int = 4000) -> str:
    """Create a stream of `count` appends of about `size` bytes (> 200 KiB); returns its first offset."""
    created = await create(session, url, content_type)
    for body in payloads(content_type, count, size):
        await append(session, url, content_type, body)
    generation, _ = split_offset(created)
    return offset_at(generation, 0)


async def walk(session: aiohttp.ClientSession, url: str, first: str) -> list[tuple[str, str, bytes]]:
    """Read the stream chunk by chunk from `first`: (offset, next offset, body) of each complete chunk."""
    chunks = []
    offset = first
    for _ in range(100):
        async with session.get(url, params={"offset": offset}) as r:
            assert r.status == 200
            body = await r.read()
            next_offset = r.headers["Stream-Next-Offset"]
            if "Stream-Up-To-Date" in r.headers:
                return chunks
            assert "immutable" in r.headers["Cache-Control"], r.headers["Cache-Control"]
            chunks.append((offset, next_offset, body))
            offset = next_offset
    raise AssertionError("the stream never ended")


async def get(
    session: aiohttp.ClientSession, url: str, offset: str, live: bool
) -> tuple[int, bytes, dict[str, str | None], float]:
    params = {"offset": offset, "live": "long-poll"} if live else {"offset": offset}
    started = time.monotonic()
    async with session.get(url, params=params) as r:
        body = await r.read()
        headers = {name: r.headers.get(name) for name in COMPARED}
        return r.status, body, headers, time.monotonic() - started


async def hits(session: aiohttp.ClientSession, edge_url: str) -> float:
    return metric(await scrape(session, edge_url), "ds_edge_cache_hits_total")


@pytest.mark.parametrize("content_type", [BINARY, JSON])
async def test_older_chunks_are_served_from_the_cache_like_the_origin(servers: Servers, content_type: str) -> None:
    origin = servers.origin("--fsync", "never", long_poll_timeout=10)
    edge = servers.edge(origin.url, long_poll_timeout=10)
    name = "cache/" + content_type.split("/")[1]
    edge_url, origin_url = edge.stream_url + name, origin.stream_url + name
    async with aiohttp.ClientSession() as session:
        first = await fill(session, edge_url, content_type)
        chunks = await walk(session, edge_url, first)
        assert len(chunks) >= 3, chunks
        # An older chunk that does not cross a multiple of the chunk size (see the test below).
        start, _, body = next(
            c for c in chunks[1:] if split_offset(c[0])[1] // CHUNK == (split_offset(c[1])[1] - 1) // CHUNK
        )
        offsets = [start]
        generation, position = split_offset(start)
        if content_type == BINARY:
            inside = 1234  # any byte
        else:
            inside = jsonmode.message_ends(jsonmode.unframe(body))[3]  # a message boundary
        offsets.append(offset_at(generation, position + inside))

        before_upstream = sum([await edge_upstream(session, edge.url, k) for k in ("catch_up", "long_poll")])
        before_hits = await hits(session, edge.url)
        before_origin = await origin_stream_gets(session, origin.url)
        requests = [(o, live) for o in offsets for live in (False, True) for _ in range(10)]
        answers = await asyncio.gather(*(get(session, edge_url, o, live) for o, live in requests))
        after_upstream = sum([await edge_upstream(session, edge.url, k) for k in ("catch_up", "long_poll")])
        after_hits = await hits(session, edge.url)
        after_origin = await origin_stream_gets(session, origin.url)
        slowest = max(a[3] for a in answers)
        print(
            f"\n{len(requests)} reads at older offsets: slowest {slowest * 1000:.0f} ms, "
            f"upstream +{after_upstream - before_upstream:.0f}, cache hits +{after_hits - before_hits:.0f}"
        )
        assert after_upstream == before_upstream, "an older chunk was fetched again from the origin"
        assert after_origin == before_origin
        assert after_hits - before_hits == len(requests)
        assert slowest < 3.0, "a long-poll at an older offset waited instead of being answered at once"

        # Every answer is what the origin itself returns for the same request.
        for (offset, live), (status, body_seen, headers, _) in zip(requests, answers, strict=True):
            o_status, o_body, o_headers, _ = await get(session, origin_url, offset, live)
            assert (status, headers) == (o_status, o_headers), (offset, live)
            assert body_seen == o_body, (offset, live)
        if content_type == BINARY:
            assert answers[-1][1] == body[inside:]
        else:
            assert json.loads(answers[-1][1]) == json.loads(body)[4:]


async def test_byte_inside_a_chunk_that_crosses_a_chunk_boundary_answers_like_the_origin(servers: Servers) -> None:
    """Appends of 4000 bytes: the chunk from 64000 is one record [64000, 68000) that crosses 65536.

    The origin answers a read from 66000 with [66000, 128000) (its boundary is then 131072); an
    edge that slices the cached chunk answers [66000, 68000). Both say `immutable`, so one URL
    would have two different immutable bodies (and ETags) depending on who answered it.
    """
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url)
    edge_url, origin_url = edge.stream_url + "cross", origin.stream_url + "cross"
    async with aiohttp.ClientSession() as session:
        first = await fill(session, edge_url, BINARY)
        chunks = await walk(session, edge_url, first)
        crossing = [c for c in chunks if split_offset(c[0])[1] // CHUNK != (split_offset(c[1])[1] - 1) // CHUNK]
        assert crossing, "no cached chunk crosses a multiple of the chunk size"
        start, end, _ = crossing[0]
        generation, position = split_offset(start)
        inside = offset_at(generation, (position // CHUNK + 1) * CHUNK + 464)  # past the boundary
        assert split_offset(inside)[1] < split_offset(end)[1]
        for live in (False, True):
            edge_answer = await get(session, edge_url, inside, live)
            origin_answer = await get(session, origin_url, inside, live)
            assert edge_answer[2]["Stream-Next-Offset"] == origin_answer[2]["Stream-Next-Offset"], (
                f"live={live}: edge ends at {edge_answer[2]['Stream-Next-Offset']}, "
                f"origin at {origin_answer[2]['Stream-Next-Offset']}"
            )
            assert edge_answer[2] == origin_answer[2]
            assert edge_answer[1] == origin_answer[1]
