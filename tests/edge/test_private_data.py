"""Private streams through the edge: per-credential cache entries, checks before the cache, signed URLs."""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.shared.auth import signed_query
from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, metric, offset_at, scrape, split_offset
from tests.support.credentials import bearer
from tests.support.sse_reader import SSEReader

BINARY = "application/octet-stream"
KEY = b"k"
POLICY = """
signing_key = "k"

[[token]]
name = "reader-a"
token = "token-a"
read = ["priv/"]

[[token]]
name = "reader-b"
token = "token-b"
read = ["priv/"]

[[token]]
name = "elsewhere"
token = "token-c"
read = ["other/"]

[[token]]
name = "writer"
token = "token-w"
admin = ["priv/"]
"""

A = bearer("token-a")
B = bearer("token-b")
WRITER = bearer("token-w")

pytestmark = pytest.mark.timeout(60)


def start(servers: Servers) -> tuple[str, str, str]:
    policy = Path(servers.tmp_path) / "auth.toml"
    policy.write_text(POLICY)
    origin = servers.origin("--fsync", "never", "--auth-config", str(policy))
    edge = servers.edge(origin.url, "--auth-config", str(policy))
    return origin.url, edge.url, edge.stream_url + "priv/stream"


async def fill_and_walk(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, bytes]:
    """A private stream of 240 KB; read its immutable chunks once with `headers`."""
    generation, _ = split_offset(await create(session, url, BINARY, headers=WRITER))
    rng = random.Random(5)
    for _ in range(60):
        await append(session, url, BINARY, rng.randbytes(4000), headers=WRITER)
    chunks: dict[str, bytes] = {}
    offset = offset_at(generation, 0)
    while True:
        async with session.get(url, params={"offset": offset}, headers=headers) as r:
            assert r.status == 200
            if "immutable" not in r.headers["Cache-Control"]:
                return chunks
            chunks[offset] = await r.read()
            offset = r.headers["Stream-Next-Offset"]


class Counts:
    def __init__(self, session: aiohttp.ClientSession, edge_url: str) -> None:
        self.session = session
        self.edge_url = edge_url
        self.upstream = 0.0
        self.hits = 0.0

    async def delta(self) -> tuple[float, float]:
        """(upstream catch-ups, cache hits) since the last call."""
        upstream = await edge_upstream(self.session, self.edge_url, "catch_up")
        hits = metric(await scrape(self.session, self.edge_url), "ds_edge_cache_hits_total")
        out = (upstream - self.upstream, hits - self.hits)
        self.upstream, self.hits = upstream, hits
        return out


async def read(
    session: aiohttp.ClientSession,
    url: str,
    offset: str,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, bytes, str]:
    async with session.get(url, params={"offset": offset, **(query or {})}, headers=headers or {}) as r:
        return r.status, await r.read(), r.headers.get("Cache-Control", "")


async def test_private_chunks_are_kept_per_credential_and_checked_before_the_cache(servers: Servers) -> None:
    _, edge_url, url = start(servers)
    async with aiohttp.ClientSession() as session:
        chunks = await fill_and_walk(session, url, A)
        offset, body = list(chunks.items())[2]
        counts = Counts(session, edge_url)
        await counts.delta()

        status, seen, cache_control = await read(session, url, offset, A)
        assert (status, seen) == (200, body)
        assert cache_control.startswith("private"), cache_control
        assert await counts.delta() == (0, 1), "token A's second read of its chunk was not a cache hit"

        status, seen, _ = await read(session, url, offset, B)
        assert (status, seen) == (200, body)
        assert await counts.delta() == (1, 0), "token B was answered from token A's private cache entry"
        status, seen, _ = await read(session, url, offset, B)
        assert (status, seen) == (200, body)
        assert await counts.delta() == (0, 1)

        for headers, wanted in (
            ({}, 401),
            (bearer("nope"), 401),
            (bearer("token-c"), 403),
        ):
            status, seen, _ = await read(session, url, offset, headers)
            assert status == wanted, (headers, status)
            assert seen != body
            assert await counts.delta() == (0, 0), f"{headers}: answered from or via the cache"
        # The same holds for a long-poll at a cached offset.
        status, seen, _ = await read(session, url, offset, {}, {"live": "long-poll"})
        assert status == 401

        # Signed URLs: two different valid signatures share one entry; bad ones never reach it.
        now = int(time.time())
        first = signed_query(KEY, "priv/", now + 3600)
        second = signed_query(KEY, "priv/", now + 1800)
        assert first["ds_sig"] != second["ds_sig"]
        status, seen, _ = await read(session, url, offset, query=first)
        assert (status, seen) == (200, body)
        assert await counts.delta() == (1, 0), "the first signed read should have gone to the origin"
        status, seen, _ = await read(session, url, offset, query=second)
        assert (status, seen) == (200, body)
        assert await counts.delta() == (0, 1), "a second valid signature did not share the signed cache entry"

        expired = signed_query(KEY, "priv/", now - 5)
        tampered = {**first, "ds_sig": first["ds_sig"][:-2] + ("AA" if not first["ds_sig"].endswith("AA") else "BB")}
        wrong_key = signed_query(b"not-k", "priv/", now + 3600)
        widened = {**first, "ds_scope": ""}
        other_scope = signed_query(KEY, "other/", now + 3600)
        for name, query in (
            ("expired", expired),
            ("tampered", tampered),
            ("wrong key", wrong_key),
            ("widened scope", widened),
            ("other scope", other_scope),
        ):
            status, seen, _ = await read(session, url, offset, query=query)
            assert status == 403, (name, status)
            assert seen != body
            status, _, _ = await read(session, url, offset, query={**query, "live": "long-poll"})
            assert status == 403, (name, "long-poll", status)
            assert await counts.delta() == (0, 0), f"{name}: answered from or via the cache"


async def test_signed_answer_from_the_cache_does_not_outlive_the_signature(servers: Servers) -> None:
    """The origin caps `max-age` at the signature's remaining life ("cached copies must not outlive
    the signature"). A chunk cached at the edge for a long-lived signature must not be handed to
    the holder of a short-lived one with the long lifetime."""
    origin_url, _, url = start(servers)
    async with aiohttp.ClientSession() as session:
        chunks = await fill_and_walk(session, url, A)
        offset, body = list(chunks.items())[1]
        now = int(time.time())
        long_lived = signed_query(KEY, "priv/", now + 3600)
        short_lived = signed_query(KEY, "priv/", now + 60)
        status, _, _ = await read(session, url, offset, query=long_lived)
        assert status == 200
        status, seen, cache_control = await read(session, url, offset, query=short_lived)
        assert (status, seen) == (200, body)
        origin_stream = origin_url + "/v1/stream/priv/stream"
        o_status, _, o_cache_control = await read(session, origin_stream, offset, query=short_lived)
        assert o_status == 200
        max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))  # type: ignore[union-attr]
        o_max_age = int(re.search(r"max-age=(\d+)", o_cache_control).group(1))  # type: ignore[union-attr]
        assert o_max_age <= 60
        assert max_age <= 60, f"edge: {cache_control!r} for a URL signed for 60 s more (origin: {o_cache_control!r})"


async def first_sse_data(session: aiohttp.ClientSession, url: str, query: dict[str, str]) -> tuple[int, str | None]:
    """Open SSE at offset -1 and return (status, payload of the first data event)."""
    params = {"offset": "-1", "live": "sse", **query}
    async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=10)) as r:
        if r.status != 200:
            return r.status, None
        return r.status, await SSEReader(r).first("data", timeout=10)


async def test_live_reads_with_a_signed_url_work_through_the_edge(servers: Servers) -> None:
    """A signed URL grants read, live modes included: the origin serves SSE to it, so must the edge."""
    origin_url, _, url = start(servers)
    async with aiohttp.ClientSession() as session:
        tail = await create(session, url, "text/plain", b"hello", headers=WRITER)
        query = signed_query(KEY, "priv/", int(time.time()) + 600)
        assert await first_sse_data(session, origin_url + "/v1/stream/priv/stream", query) == (200, "hello")
        assert await first_sse_data(session, url, {}) == (401, None)
        assert await first_sse_data(session, url, query) == (200, "hello"), "signed SSE refused by the edge"

        async def long_poll() -> tuple[int, bytes]:
            params = {"offset": tail, "live": "long-poll", **query}
            async with session.get(url, params=params) as r:
                return r.status, await r.read()

        poll = asyncio.ensure_future(long_poll())
        await asyncio.sleep(0.3)
        await append(session, url, "text/plain", b" world", headers=WRITER)
        async with asyncio.timeout(10):
            assert await poll == (200, b" world")
