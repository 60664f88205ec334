"""REST reads through a real edge: complete pages cached (memory and disk), misses coalesced,
tail pages never stored, representations and credentials never mixed up."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.rest.support import append, create, upstream, url
from tests.edge.support import metric, scrape
from tests.support.credentials import bearer

pytestmark = pytest.mark.timeout(60)


async def _complete_page(http: aiohttp.ClientSession, base: str, name: str) -> tuple[str, str]:
    """A stream whose first page (limit 2) is complete: (its start offset, its next offset)."""
    await create(http, base, name)
    first = await append(http, base, name, [1, 2, 3])
    async with http.get(url(base, name, "read"), params={"limit": "1"}) as r:
        page = await r.json()
    start = page["messages"][0]["offset"]  # after the first message: a page from there is explicit
    return start, first["next_offset"]


async def test_identical_reads_of_a_complete_page_reach_the_origin_once(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        after, _ = await _complete_page(http, edge.url, "cached")
        before = await upstream(http, edge.url, "rest_read")
        pages = []
        for _ in range(20):
            async with http.get(url(edge.url, "cached", "read"), params={"after": after, "limit": "1"}) as r:
                assert r.status == 200
                assert "immutable" in r.headers["Cache-Control"]
                assert r.headers["Vary"] == "Accept"
                assert 'rel="next"' in r.headers["Link"]
                assert r.headers["Surrogate-Key"] == r.headers["Cache-Tag"] == "ds/cached"  # the stream purge tag
                pages.append(await r.json())
        assert all(p == pages[0] for p in pages)
        assert [m["data"] for m in pages[0]["messages"]] == [2]
        assert await upstream(http, edge.url, "rest_read") - before == 1
        # The same page through the edge and straight from the origin: the same answer.
        async with http.get(url(origin.url, "cached", "read"), params={"after": after, "limit": "1"}) as r:
            assert await r.json() == pages[0]


async def test_concurrent_identical_misses_are_one_upstream_request(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        after, _ = await _complete_page(http, edge.url, "coalesced")
        before = await upstream(http, edge.url, "rest_read")

        async def read() -> list[object]:
            async with http.get(url(edge.url, "coalesced", "read"), params={"after": after, "limit": "1"}) as r:
                assert r.status == 200
                return [m["data"] for m in (await r.json())["messages"]]

        assert await asyncio.gather(*(read() for _ in range(50))) == [[2]] * 50
        assert await upstream(http, edge.url, "rest_read") - before == 1


async def test_a_page_reaching_the_tail_is_not_stored(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        await create(http, edge.url, "tail-page")
        first = await append(http, edge.url, "tail-page", [1])
        after = first["offsets"][0]
        before = await upstream(http, edge.url, "rest_read")
        for expected in ([], [2]):
            async with http.get(url(edge.url, "tail-page", "read"), params={"after": after}) as r:
                page = await r.json()
                assert page["up_to_date"] is True
                assert "immutable" not in r.headers["Cache-Control"]
                assert [m["data"] for m in page["messages"]] == expected
            if not expected:
                await append(http, edge.url, "tail-page", [2])
        assert await upstream(http, edge.url, "rest_read") - before == 2


async def test_json_and_raw_pages_are_kept_apart(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        after, _ = await _complete_page(http, edge.url, "variants")
        target = url(edge.url, "variants", "read")
        for _ in range(2):  # the second round is answered from the cache
            async with http.get(target, params={"after": after, "limit": "1"}) as r:
                assert (await r.json())["messages"][0]["data"] == 2
                json_etag = r.headers["ETag"]
            async with http.get(
                target, params={"after": after, "limit": "1"}, headers={"Accept": "application/octet-stream"}
            ) as r:
                assert await r.read() == b"[2]"
                assert r.headers["Stream-Start-Offset"] == after
                assert r.headers["ETag"] != json_etag
            async with http.get(
                target, params={"after": after, "limit": "1"}, headers={"If-None-Match": json_etag}
            ) as r:
                assert r.status == 304


POLICY = """
signing_key = "k"

[[token]]
name = "reader-a"
token = "token-a"
read = ["priv/"]

[[token]]
name = "outsider"
token = "token-c"
read = ["other/"]

[[token]]
name = "writer"
token = "token-w"
admin = ["priv/"]
"""


async def test_private_pages_never_reach_other_credentials(servers: Servers) -> None:
    """Tokens required: a page the edge holds for one token is never given to a request without
    one, or with a token that may not read it; each gets the origin's own refusal."""
    policy = servers.tmp_path / "policy.toml"
    policy.write_text(POLICY)
    origin = servers.origin("--auth-config", str(policy))
    edge = servers.edge(origin.url, "--auth-config", str(policy))
    async with aiohttp.ClientSession(headers=bearer("token-w")) as http:
        after, _ = await _complete_page(http, edge.url, "priv/s")
    target = url(edge.url, "priv/s", "read")
    params = {"after": after, "limit": "1"}
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # the second is answered from the cache
            async with http.get(target, params=params, headers=bearer("token-a")) as r:
                assert r.status == 200
                assert r.headers["Cache-Control"].startswith("private")
        before = await upstream(http, edge.url, "rest_read")
        async with http.get(target, params=params) as r:
            assert r.status == 401
        async with http.get(target, params=params, headers=bearer("token-c")) as r:
            assert r.status == 403
        async with http.get(target, params=params, headers=bearer("token-a")) as r:
            assert r.status == 200
        assert await upstream(http, edge.url, "rest_read") - before <= 2  # refusals: the origin's or the edge's


async def test_pages_survive_an_edge_restart_in_the_disk_tier(servers: Servers) -> None:
    origin = servers.origin()
    cache_dir = servers.tmp_path / "edge-cache"
    flags = ("--cache-dir", str(cache_dir), "--cache-disk", str(64 * 1024 * 1024))
    edge = servers.edge(origin.url, *flags)
    async with aiohttp.ClientSession() as http:
        after, _ = await _complete_page(http, edge.url, "disk")
        params = {"after": after, "limit": "1"}
        async with http.get(url(edge.url, "disk", "read"), params=params) as r:
            expected = await r.json()
        await asyncio.sleep(0.5)  # the disk write is queued behind the answer
        edge.stop()
        edge = servers.edge(origin.url, *flags)
        async with http.get(url(edge.url, "disk", "read"), params=params) as r:
            assert await r.json() == expected
        text = await scrape(http, edge.url)
        assert metric(text, "ds_edge_cache_hits_total", tier="disk") == 1
        assert await upstream(http, edge.url, "rest_read") == 0


async def test_a_deleted_stream_is_not_served_from_the_cache(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as http:
        after, _ = await _complete_page(http, edge.url, "doomed")
        async with http.get(url(edge.url, "doomed", "read"), params={"after": after, "limit": "1"}) as r:
            assert r.status == 200
        async with http.delete(url(edge.url, "doomed")) as r:
            assert r.status == 204
        async with http.get(url(edge.url, "doomed", "read"), params={"after": after, "limit": "1"}) as r:
            assert r.status == 404
