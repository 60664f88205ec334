"""The REST API through the shipped CDN configurations, in front of a real edge and origin.

Varnish (deploy/cdn/varnish.vcl) and nginx (deploy/cdn/nginx.conf), each in front of an edge in
front of an origin, as deployed. What reaches the edge is counted by the edge's own request
metrics (`ds_edge_http_requests_total{route="rest_read"}` ...), read directly, not through the CDN:
- 20 identical reads of a complete page (10 at once, then 10 more) reach the edge once;
- JSON and raw pages of one URL (`Accept`) are never handed to each other, whatever the Accept
  string, and each is fetched once;
- a page that reaches the tail lives its max-age (1 s, + 1 s stale-while-revalidate), not longer;
- an SSE tail is streamed as events come, and never cached; describe and list are never cached;
- a long-poll tail's 200 is kept its max-age and shared by clients waiting together; its 204 is not.

Skipped where `varnishd` or `nginx` is missing (scripts/install --test installs both).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cdn.nginx import NginxProcess, find_nginx
from tests.cdn.varnish import VarnishProcess, find_tool
from tests.edge.support import metric, scrape
from tests.rest.helpers import append, create, stream_url
from tests.support.processes import EdgeProcess, process_group
from tests.support.sse_reader import SSEReader

RAW = "application/octet-stream"
JSON = "application/json"


def varnish(workdir: Path, upstream: str) -> AbstractContextManager[Any]:
    return VarnishProcess(workdir, upstream)


def nginx(workdir: Path, upstream: str) -> AbstractContextManager[Any]:
    return NginxProcess(workdir, upstream)


CDNS = [
    pytest.param(
        varnish,
        id="varnish",
        marks=pytest.mark.skipif(find_tool("varnishd") is None, reason="varnishd is not installed"),
    ),
    pytest.param(
        nginx,
        id="nginx",
        marks=pytest.mark.skipif(find_nginx() is None, reason="the nginx binary is not installed"),
    ),
]


@dataclass
class Setup:
    http: aiohttp.ClientSession
    edge: EdgeProcess
    cdn_url: str

    @property
    def api(self) -> str:
        return self.cdn_url + "/streams/api/v1"

    @property
    def direct(self) -> str:
        """The API at the edge itself, bypassing the CDN (to set streams up)."""
        return self.edge.url + "/streams/api/v1"

    async def edge_requests(self, route: str, method: str = "GET") -> int:
        return int(
            metric(await scrape(self.http, self.edge.url), "ds_edge_http_requests_total", method=method, route=route)
        )

    async def settled(self, route: str, at_least: int, timeout: float = 5.0) -> int:
        """The edge's count once it reached `at_least` and stopped moving (it counts a request when
        its response ends, a moment after the CDN passed it on)."""
        deadline = time.monotonic() + timeout
        count = await self.edge_requests(route)
        while count < at_least and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            count = await self.edge_requests(route)
        await asyncio.sleep(0.3)
        return await self.edge_requests(route)

    async def get(self, url: str, accept: str | None = None, **params: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": accept} if accept is not None else {}
        async with self.http.get(url, params=params, headers=headers) as r:
            return r.status, dict(r.headers), await r.read()

    async def stream_with(self, messages: int) -> tuple[str, list[str]]:
        """A new JSON stream holding `messages` messages: its name and their offsets."""
        name = f"cdn/{uuid.uuid4().hex[:10]}"
        await create(self.http, self.direct, name)
        offsets: list[str] = []
        for i in range(messages):
            offsets += (await append(self.http, self.direct, name, f"m{i}"))["offsets"]
        return name, offsets


@pytest.fixture(params=CDNS)
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    make_cdn: Callable[[Path, str], AbstractContextManager[Any]] = request.param
    with process_group(tmp_path, long_poll_timeout=3.0) as servers:
        origin = servers.origin()
        edge = servers.edge(origin.url)
        with make_cdn(tmp_path / "cdn", edge.url) as cdn:
            async with aiohttp.ClientSession() as http:
                yield Setup(http, edge, cdn.url)


async def test_twenty_identical_reads_of_a_complete_page_reach_the_edge_once(setup: Setup) -> None:
    name, offsets = await setup.stream_with(6)
    url = stream_url(setup.api, name, "read")
    before = await setup.edge_requests("rest_read")
    at_once = await asyncio.gather(*(setup.get(url, after=offsets[0], limit="2") for _ in range(10)))
    one_by_one = [await setup.get(url, after=offsets[0], limit="2") for _ in range(10)]
    for status, headers, body in at_once + one_by_one:
        assert status == 200
        assert "immutable" in headers["Cache-Control"]
        assert [m["data"] for m in json.loads(body)["messages"]] == ["m1", "m2"]
    assert await setup.settled("rest_read", before + 1) == before + 1


async def test_json_and_raw_pages_are_not_mixed_up(setup: Setup) -> None:
    name, offsets = await setup.stream_with(5)
    url = stream_url(setup.api, name, "read")
    before = await setup.edge_requests("rest_read")
    page = {"after": offsets[0], "limit": "2"}
    accepts = [(JSON, "json"), (RAW, "raw"), ("*/*", "json"), (f"{RAW}, */*;q=0.1", "raw"), (None, "json")]
    for _ in range(3):
        for accept, form in accepts:
            status, headers, body = await setup.get(url, accept, **page)
            assert status == 200
            assert "accept" in headers.get("Vary", "").lower()
            if form == "raw":
                assert json.loads(body) == ["m1", "m2"], accept
            else:
                assert [m["data"] for m in json.loads(body)["messages"]] == ["m1", "m2"], accept
    # One fetch per representation, however many Accept strings asked for it.
    assert await setup.settled("rest_read", before + 2) == before + 2


async def test_a_page_at_the_tail_lives_only_its_max_age(setup: Setup) -> None:
    name, offsets = await setup.stream_with(2)
    url = stream_url(setup.api, name, "read")
    status, headers, body = await setup.get(url, after=offsets[0])
    assert status == 200 and headers["Cache-Control"] == "public, max-age=1, stale-while-revalidate=1"
    assert [m["data"] for m in json.loads(body)["messages"]] == ["m1"]
    await append(setup.http, setup.direct, name, "m2")
    seen: list[str] = []
    deadline = time.monotonic() + 5.0  # max-age 1 s + stale-while-revalidate 1 s, and some slack
    while "m2" not in seen:
        assert time.monotonic() < deadline, f"the tail page was kept beyond its max-age: {seen}"
        await asyncio.sleep(0.25)
        seen = [m["data"] for m in json.loads((await setup.get(url, after=offsets[0]))[2])["messages"]]
    assert seen == ["m1", "m2"]


async def test_an_sse_tail_streams_through_and_describe_is_never_cached(setup: Setup) -> None:
    name, offsets = await setup.stream_with(1)
    timeout = aiohttp.ClientTimeout(total=20)
    async with setup.http.get(stream_url(setup.api, name, "tail"), params={"after": offsets[0]}, timeout=timeout) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        reader = SSEReader(r)
        await asyncio.sleep(0.3)
        sent = time.monotonic()
        await append(setup.http, setup.direct, name, "live")
        data = None
        while data is None or "live" not in data:
            event = await reader.next(timeout=5)
            assert event is not None, "the tail ended"
            data = event.data
        assert time.monotonic() - sent < 2.0, "the CDN held the event back"
    before = await setup.edge_requests("rest_streams")
    for _ in range(3):
        status, headers, _ = await setup.get(stream_url(setup.api, name))
        assert status == 200 and headers["Cache-Control"] == "no-store"
    assert await setup.settled("rest_streams", before + 3) == before + 3


async def test_long_poll_tails_follow_their_cache_control(setup: Setup) -> None:
    """A long-poll tail that returned data is kept its max-age (20 s: the data after that offset
    does not change) and shared by concurrent clients; one that ended in a 204 is never kept."""
    name, offsets = await setup.stream_with(2)
    url = stream_url(setup.api, name, "tail")
    before = await setup.edge_requests("rest_tail")
    answers = [await setup.get(url, after=offsets[0], mode="long-poll") for _ in range(5)]
    for status, headers, body in answers:
        assert status == 200 and headers["Cache-Control"] == "public, max-age=20"
        assert [m["data"] for m in json.loads(body)["messages"]] == ["m1"]
    assert await setup.settled("rest_tail", before + 1) == before + 1

    # Ten clients waiting at the tail: at most two requests reach the edge, all get the append.
    waiting = [asyncio.ensure_future(setup.get(url, after=offsets[1], mode="long-poll")) for _ in range(10)]
    await asyncio.sleep(0.5)
    await append(setup.http, setup.direct, name, "m2")
    for status, _, body in await asyncio.gather(*waiting):
        assert status == 200 and [m["data"] for m in json.loads(body)["messages"]] == ["m2"]
    assert await setup.settled("rest_tail", before + 2) <= before + 3

    # At the tail of an idle stream: 204 after the long-poll timeout (3 s), and not kept.
    tail = (await setup.get(stream_url(setup.api, name, "read"), after=offsets[1]))[1]["Stream-Next-Offset"]
    counted = await setup.edge_requests("rest_tail")
    for _ in range(2):
        status, headers, _ = await setup.get(url, after=tail, mode="long-poll")
        assert status == 204 and headers["Cache-Control"] == "no-store"
    assert await setup.settled("rest_tail", counted + 2) == counted + 2
