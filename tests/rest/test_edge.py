"""The REST API through an edge: every endpoint passes through, SSE tails stream unbuffered."""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import pytest

from tests.rest.helpers import append, create, read, stream_url
from tests.support.processes import EdgeProcess, OriginProcess
from tests.support.sse_reader import SSEReader


@pytest.fixture(scope="module")
def edge(rest_origin: OriginProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with EdgeProcess(rest_origin.url, tmp_path_factory.mktemp("edge")) as process:
        yield process


async def test_every_endpoint_through_the_edge(http: aiohttp.ClientSession, edge: EdgeProcess, name: str) -> None:
    api = edge.url + "/streams/api/v1"
    made = await create(http, api, name)
    async with http.post(api + "/streams", json={"name": name}) as r:
        assert r.status == 200
    async with http.post(api + "/streams", json={"name": name, "content_type": "text/plain"}) as r:
        assert r.status == 409
        assert (await r.json())["error"]["code"] == "conflict"
    async with http.get(stream_url(api, name)) as r:
        assert (await r.json())["next_offset"] == made["next_offset"]
    appended = await append(http, api, name, [1, 2, 3])
    page = await read(http, api, name, limit="2")
    assert [m["data"] for m in page["messages"]] == [1, 2]
    async with http.get(stream_url(api, name, "read"), params={"after": page["next_offset"]}) as r:
        assert r.headers["Cache-Control"] != "no-store"  # the origin's caching rules reach CDNs
        assert [m["offset"] for m in (await r.json())["messages"]] == appended["offsets"][2:]
    async with http.get(api + "/streams", params={"prefix": name}) as r:
        assert [s["name"] for s in (await r.json())["streams"]] == [name]
    params = {"mode": "long-poll", "after": appended["next_offset"]}
    async with http.get(stream_url(api, name, "tail"), params=params) as r:
        assert r.status == 204
    async with http.delete(stream_url(api, name)) as r:
        assert r.status == 204
    async with http.get(stream_url(api, name, "read")) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"


async def test_sse_tail_streams_through_unbuffered(http: aiohttp.ClientSession, edge: EdgeProcess, name: str) -> None:
    api = edge.url + "/streams/api/v1"
    await create(http, api, name)
    first = await append(http, api, name, "before")
    async with http.get(stream_url(api, name, "tail")) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        reader = SSEReader(r)
        event = await reader.next()
        assert event is not None and (event.id, event.data) == (first["offsets"][0], '"before"')
        for i in range(3):  # each live event arrives while the response stays open
            made = await append(http, api, name, {"live": i})
            event = await reader.next(timeout=5)
            assert event is not None and event.id == made["offsets"][0] and json.loads(event.data) == {"live": i}
        headers = {"Stream-Closed": "true"}
        async with http.post(stream_url(api, name, "append"), data=b"", headers=headers) as closing:
            assert closing.status == 200
        event = await reader.next()
        assert event is not None and event.event == "closed"
        assert await reader.next() is None


async def test_a_protocol_write_through_the_edge_is_seen_by_a_rest_read(
    http: aiohttp.ClientSession, edge: EdgeProcess, name: str
) -> None:
    api = edge.url + "/streams/api/v1"
    await create(http, api, name)
    for i in range(3):
        async with http.post(
            edge.stream_url + name, data=json.dumps(i).encode(), headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 204
        page = await read(http, api, name)
        assert [m["data"] for m in page["messages"]] == list(range(i + 1))


async def test_origin_down_is_a_json_503(http: aiohttp.ClientSession, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("edge-down")
    with OriginProcess(root / "data") as origin:
        url = origin.url
    with EdgeProcess(url, root) as edge:
        async with http.get(edge.url + "/streams/api/v1/streams/x/read") as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "unavailable"
            assert r.headers["Retry-After"]
