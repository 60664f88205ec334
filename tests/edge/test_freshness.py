"""A cached copy is never served when the origin would refuse it: expiry, sliding TTLs, deletion.

Real origin and edge processes. The origin's chunks are small (--chunk-size 1024), so a few
appends make immutable chunks the edge caches.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, scrape, split_offset, wait_metric
from tests.support.credentials import bearer

BINARY = "application/octet-stream"
SMALL_CHUNKS = ("--fsync", "never", "--chunk-size", "1024")
FEED = "ds_edge_change_feed_following"

pytestmark = pytest.mark.timeout(90)


async def fill(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> str:
    """Create the stream at `url` with four 1000-byte appends; returns its first offset."""
    created = await create(session, url, BINARY, headers=headers or {})
    for i in range(4):
        await append(session, url, BINARY, bytes([65 + i]) * 1000, headers=headers or {})
    return created


async def status_of(session: aiohttp.ClientSession, url: str, offset: str) -> tuple[int, dict[str, str]]:
    async with session.get(url, params={"offset": offset}) as r:
        await r.read()
        return r.status, dict(r.headers)


async def cached_read(session: aiohttp.ClientSession, edge_url: str, url: str, offset: str) -> dict[str, str]:
    """Read `offset` twice through the edge: the first fills the cache with an immutable chunk."""
    status, headers = await status_of(session, url, offset)
    assert status == 200 and "immutable" in headers["Cache-Control"], headers
    before = await edge_upstream(session, edge_url, "catch_up")
    status, headers = await status_of(session, url, offset)
    assert status == 200
    assert await edge_upstream(session, edge_url, "catch_up") == before, "the second read was not a cache hit"
    return headers


async def until_status(
    session: aiohttp.ClientSession, url: str, offset: str, wanted: set[int], timeout: float
) -> tuple[int, float]:
    """Read until the status is one of `wanted` or `timeout` passes: (last status, seconds taken)."""
    started = time.monotonic()
    status = 0
    while time.monotonic() - started < timeout:
        status, _ = await status_of(session, url, offset)
        if status in wanted:
            break
        await asyncio.sleep(0.05)
    return status, time.monotonic() - started


def rfc3339(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_ttl_stream_read_through_the_edge_stays_alive_at_the_origin(servers: Servers) -> None:
    origin = servers.origin(*SMALL_CHUNKS)
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as session:
        first = await fill(session, origin.stream_url + "ttl", {"Stream-TTL": "3"})
        at_edge = edge.stream_url + "ttl"
        await cached_read(session, edge.url, at_edge, first)
        upstream_before = await edge_upstream(session, edge.url, "catch_up")
        statuses = []
        reads = 0
        started = time.monotonic()
        while time.monotonic() - started < 8.0:  # well past the 3 s TTL, read only through the edge
            statuses.append((await status_of(session, at_edge, first))[0])
            reads += 1
            await asyncio.sleep(0.2)
        upstream = await edge_upstream(session, edge.url, "catch_up") - upstream_before
        async with session.head(origin.stream_url + "ttl") as r:
            origin_status = r.status
    assert origin_status == 200, f"the origin expired a stream read {reads} times through the edge in 8 s"
    assert set(statuses) == {200}
    # Most reads were cache hits (reported to the origin), not passed on: one fetch per max-age (3 s).
    assert upstream <= 6, f"{upstream} of {reads} reads went to the origin"


@pytest.mark.parametrize("tier", ["memory", "disk"])
async def test_a_chunk_is_not_served_past_its_max_age(servers: Servers, tmp_path: Path, tier: str) -> None:
    origin = servers.origin(*SMALL_CHUNKS)
    flags = ("--cache-memory", "1", "--cache-dir", str(tmp_path / "cache"), "--cache-disk", "1000000")
    edge = servers.edge(origin.url, *(flags if tier == "disk" else ()))
    expires = int(time.time()) + 4
    async with aiohttp.ClientSession() as session:
        first = await fill(session, origin.stream_url + "exp", {"Stream-Expires-At": rfc3339(expires)})
        generation, _ = split_offset(first)
        inside = f"{generation:016d}_{100:016d}"  # a byte inside the first chunk: the handlers' path
        at_edge = edge.stream_url + "exp"
        if tier == "disk":
            await status_of(session, at_edge, first)  # the disk write happens after the answer
            await asyncio.sleep(0.5)
        headers = await cached_read(session, edge.url, at_edge, first)
        assert 0 < int(headers["Cache-Control"].split("max-age=")[1].split(",")[0]) <= 4
        await cached_read(session, edge.url, at_edge, inside)
        hits = await scrape(session, edge.url)
        assert f'ds_edge_cache_hits_total{{tier="{tier}"}}' in hits
        # The origin stops serving the stream at its expiry; the edge's copy ends no later.
        status, _ = await until_status(session, origin.stream_url + "exp", first, {404}, timeout=10)
        assert status == 404
        served = []
        for offset in (first, inside):
            status, waited = await until_status(session, at_edge, offset, {404}, timeout=3)
            served.append((status, round(waited, 2)))
    assert all(status == 404 and waited < 1.0 for status, waited in served), served
    assert 0 <= int(headers.get("Age", "-1")) <= 4, "a cached copy says how long it was held"


async def test_a_deleted_stream_is_gone_at_the_edge_within_the_feed_bound(servers: Servers) -> None:
    origin = servers.origin(*SMALL_CHUNKS)
    # A fallback far beyond the bound asserted: the change feed is what evicts.
    edge = servers.edge(origin.url, "--cache-fallback-age", "60")
    async with aiohttp.ClientSession() as session:
        await wait_metric(session, edge.url, FEED, 1, timeout=5)
        first = await fill(session, origin.stream_url + "gone")
        await cached_read(session, edge.url, edge.stream_url + "gone", first)
        async with session.delete(origin.stream_url + "gone") as r:
            assert r.status == 204
        status, waited = await until_status(session, edge.stream_url + "gone", first, {404}, timeout=5)
    assert status == 404 and waited < 2.0, f"edge still {status} {waited:.2f} s after the origin deleted the stream"


async def test_a_recreated_streams_old_offsets_answer_as_the_origin(servers: Servers) -> None:
    origin = servers.origin(*SMALL_CHUNKS)
    edge = servers.edge(origin.url, "--cache-fallback-age", "60")
    async with aiohttp.ClientSession() as session:
        await wait_metric(session, edge.url, FEED, 1, timeout=5)
        old = await fill(session, origin.stream_url + "again")
        await cached_read(session, edge.url, edge.stream_url + "again", old)
        async with session.delete(origin.stream_url + "again") as r:
            assert r.status == 204
        new = await fill(session, origin.stream_url + "again")
        assert split_offset(new)[0] != split_offset(old)[0]
        expected, _ = await status_of(session, origin.stream_url + "again", old)
        assert expected in (404, 410)
        status, waited = await until_status(session, edge.stream_url + "again", old, {expected}, timeout=5)
    assert status == expected and waited < 2.0, f"edge {status} (origin {expected}) after {waited:.2f} s"


POLICY = """
public_read = ["pub/"]

[[token]]
name = "writer"
token = "token-w"
read = [""]
write = [""]
admin = [""]
"""
WRITER = bearer("token-w")


async def test_without_the_feed_a_deleted_stream_is_gone_within_the_fallback_age(servers: Servers) -> None:
    policy = servers.tmp_path / "auth.toml"
    policy.write_text(POLICY)
    origin = servers.origin(*SMALL_CHUNKS, "--auth-config", str(policy))
    # No --origin-token: the protected origin refuses the change feed.
    edge = servers.edge(origin.url, "--cache-fallback-age", "1.5")
    async with aiohttp.ClientSession() as session:
        first = await fill(session, origin.stream_url + "pub/s", WRITER)
        await cached_read(session, edge.url, edge.stream_url + "pub/s", first)
        async with session.delete(origin.stream_url + "pub/s", headers=WRITER) as r:
            assert r.status == 204
        status, waited = await until_status(session, edge.stream_url + "pub/s", first, {404}, timeout=6)
    assert status == 404 and waited < 4.0, f"edge still {status} {waited:.2f} s after the delete (fallback 1.5 s)"


async def test_without_a_token_reads_of_a_ttl_stream_still_keep_it_alive(servers: Servers) -> None:
    policy = servers.tmp_path / "auth.toml"
    policy.write_text(POLICY)
    origin = servers.origin(*SMALL_CHUNKS, "--auth-config", str(policy))
    edge = servers.edge(origin.url)  # no --origin-token: the origin refuses reports of cached reads
    async with aiohttp.ClientSession() as session:
        first = await fill(session, origin.stream_url + "pub/ttl", {**WRITER, "Stream-TTL": "3"})
        statuses = []
        started = time.monotonic()
        while time.monotonic() - started < 8.0:
            statuses.append((await status_of(session, edge.stream_url + "pub/ttl", first))[0])
            await asyncio.sleep(0.2)
        async with session.head(origin.stream_url + "pub/ttl", headers=WRITER) as r:
            origin_status = r.status
    assert origin_status == 200 and set(statuses) == {200}, (origin_status, statuses)


async def test_a_deleted_streams_recent_long_poll_answers_are_forgotten(servers: Servers) -> None:
    origin = servers.origin(*SMALL_CHUNKS)
    edge = servers.edge(origin.url, "--cache-fallback-age", "60")
    url = edge.stream_url + "polled"
    async with aiohttp.ClientSession() as session:
        await wait_metric(session, edge.url, FEED, 1, timeout=5)
        tail = await create(session, origin.stream_url + "polled", BINARY)
        params = {"offset": tail, "live": "long-poll"}

        async def poll() -> tuple[int, bytes]:
            async with session.get(url, params=params) as r:
                return r.status, await r.read()

        waiting = asyncio.ensure_future(poll())
        await asyncio.sleep(0.3)
        await append(session, origin.stream_url + "polled", BINARY, b"before the delete")
        assert await waiting == (200, b"before the delete")
        assert await poll() == (200, b"before the delete"), "a late-comer gets the shared answer"
        async with session.delete(origin.stream_url + "polled") as r:
            assert r.status == 204
        started = time.monotonic()
        answers = []
        while time.monotonic() - started < 5 and (not answers or answers[-1][0] != 404):
            answers.append(await poll())
            await asyncio.sleep(0.05)
        waited = time.monotonic() - started
    assert answers[-1][0] == 404 and waited < 2.0, f"{len(answers)} answers in {waited:.2f} s: {answers[-1]}"


async def test_with_an_origin_token_a_protected_origin_gets_reports_and_sends_deletions(servers: Servers) -> None:
    policy = servers.tmp_path / "auth.toml"
    policy.write_text(POLICY)
    origin = servers.origin(*SMALL_CHUNKS, "--auth-config", str(policy))
    edge = servers.edge(origin.url, "--origin-token", "token-w", "--cache-fallback-age", "60")
    at_edge = edge.stream_url + "pub/ttl"
    async with aiohttp.ClientSession() as session:
        await wait_metric(session, edge.url, FEED, 1, timeout=5)
        first = await fill(session, origin.stream_url + "pub/ttl", {**WRITER, "Stream-TTL": "3"})
        await cached_read(session, edge.url, at_edge, first)
        upstream_before = await edge_upstream(session, edge.url, "catch_up")
        statuses = []
        started = time.monotonic()
        while time.monotonic() - started < 7.0:
            statuses.append((await status_of(session, at_edge, first))[0])
            await asyncio.sleep(0.2)
        upstream = await edge_upstream(session, edge.url, "catch_up") - upstream_before
        async with session.head(origin.stream_url + "pub/ttl", headers=WRITER) as r:
            alive = r.status
        async with session.delete(origin.stream_url + "pub/ttl", headers=WRITER) as r:
            assert r.status == 204
        status, waited = await until_status(session, at_edge, first, {404}, timeout=5)
    assert alive == 200 and set(statuses) == {200}, (alive, statuses)
    assert upstream <= 5, f"{upstream} of {len(statuses)} reads went to the origin (reports refused?)"
    assert status == 404 and waited < 2.0, f"edge still {status} {waited:.2f} s after the delete"


async def test_while_the_origin_is_down_copies_within_their_max_age_are_still_served(servers: Servers) -> None:
    origin = servers.origin(*SMALL_CHUNKS)
    edge = servers.edge(origin.url, "--cache-fallback-age", "1")
    async with aiohttp.ClientSession() as session:
        first = await fill(session, origin.stream_url + "kept")
        await cached_read(session, edge.url, edge.stream_url + "kept", first)
        origin.kill()
        await asyncio.sleep(1.5)  # past the fallback age: the copy is no longer verified, nor can it be
        status, headers = await status_of(session, edge.stream_url + "kept", first)
    assert status == 200 and "immutable" in headers["Cache-Control"], (status, headers)
