"""The replication client against an in-process origin (memory engine), and against a scripted one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin_streams.edge.region.replication_client import ReplicationClient
from plugin_streams.origin.app import build_app
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared import replication as r
from plugin_streams.shared.errors import Unavailable

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
async def origin(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(build_app(OriginConfig(engine="memory"), store=MemoryStore()))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _client(server: TestServer, session: aiohttp.ClientSession) -> ReplicationClient:
    return ReplicationClient(str(server.make_url("/")), session, {}, heartbeat=0.2)


async def _create(session: aiohttp.ClientSession, server: TestServer, path: str, body: bytes = b"") -> None:
    async with session.put(server.make_url(f"/v1/stream/{path}"), data=body) as response:
        assert response.status == 201


async def test_describe_names_the_incarnation_at_a_path_or_none(
    origin: TestServer, session: aiohttp.ClientSession
) -> None:
    await _create(session, origin, "logs/app", b"hello")
    client = _client(origin, session)
    described = await client.describe("logs/app")
    assert described is not None and described.path == "logs/app" and described.retained_from == 0
    again = await client.describe("logs/app", described.config.generation)
    assert again == described
    assert await client.describe("nothing/here") is None
    assert await client.describe("logs/app", described.config.generation + 100) is None


async def test_the_log_feed_brings_records_then_a_heartbeat_at_the_origins_tail(
    origin: TestServer, session: aiohttp.ClientSession
) -> None:
    await _create(session, origin, "a", b"abc")
    client = _client(origin, session)
    described = await client.describe("a")
    assert described is not None
    frames: list[r.RecordFrame | r.Heartbeat] = []
    async with client.log("a", described.config.generation, 0, 1 << 20) as feed:
        assert feed.missing is None
        while not any(isinstance(frame, r.Heartbeat) for frame in frames):
            chunk = await feed.read()
            assert chunk is not None
            frames.extend(chunk)
    records = [frame for frame in frames if isinstance(frame, r.RecordFrame)]
    assert [(f.start, f.payload) for f in records] == [(0, b"abc")]
    assert frames[-1] == r.Heartbeat(tail=3, retained_from=0, closed=False, gone=False)
    async with client.log("a", described.config.generation + 1, 0, 1 << 20) as feed:
        assert feed.missing == 404 and await feed.read() is None


async def test_the_change_feed_names_its_epoch_first_and_announces_new_streams(
    origin: TestServer, session: aiohttp.ClientSession
) -> None:
    client = _client(origin, session)
    async with client.changes(0, None, 0.2) as feed:
        hello = await feed.next_event()
        assert hello is not None and hello["type"] in (r.HELLO, r.RESYNC) and hello["epoch"]
        await _create(session, origin, "new")
        event = await feed.next_event()
        while event is not None and event["type"] == r.HEARTBEAT:
            event = await feed.next_event()
        assert event is not None and event["type"] == r.CREATED and event["stream"]["config"]["path"] == "new"


async def test_an_unreachable_origin_is_unavailable(session: aiohttp.ClientSession) -> None:
    client = ReplicationClient("http://127.0.0.1:9", session, {}, heartbeat=0.2)
    with pytest.raises(Unavailable):
        await client.describe("a")
    assert await client.touch(["a", "b"]) == ["a", "b"]


# -- a scripted origin: paging and batching -------------------------------------------------


def _fields(path: str, generation: int) -> dict[str, Any]:
    config = {"generation": generation, "path": path, "content_type": "text/plain", "ttl_seconds": None}
    config |= {"expires": None, "created_ms": 0, "soft_deleted": False, "fork": None}
    return {"config": config, "tail": 0, "retained_from": 0, "closed": False}


async def test_the_listing_is_read_page_by_page(aiohttp_server: AiohttpServer, session: aiohttp.ClientSession) -> None:
    pages = {"": (["a", "b"], "b"), "b": (["c"], None)}
    asked: list[str] = []

    async def listing(request: web.Request) -> web.Response:
        after = request.query["after"]
        asked.append(after)
        paths, following = pages[after]
        streams = [_fields(p, i + 1) for i, p in enumerate(paths)]
        return web.json_response({"streams": streams, "next": following})

    app = web.Application()
    app.router.add_get(r.STREAMS_PATH, listing)
    client = _client(await aiohttp_server(app), session)
    listed = await client.list_streams()
    assert sorted(listed) == ["a", "b", "c"] and asked == ["", "b"]
    assert listed["b"].config.generation == 2


async def test_touch_reports_go_in_batches_the_origin_accepts_and_return_what_was_not_sent(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession
) -> None:
    """More paths than one report may carry: each post within the limit; after a failure, the rest is returned."""
    sent: list[list[str]] = []

    async def touch(request: web.Request) -> web.Response:
        if len(sent) == 2:
            assert request.transport is not None
            request.transport.close()  # the origin goes away mid-report
            raise ConnectionResetError
        sent.append((await request.json())["paths"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(r.TOUCH_PATH, touch)
    client = _client(await aiohttp_server(app), session)
    paths = [f"s/{i:06d}" for i in range(r.MAX_TOUCH_PATHS * 2 + 5)]
    assert await client.touch(paths) == paths[-5:]
    assert [len(batch) for batch in sent] == [r.MAX_TOUCH_PATHS, r.MAX_TOUCH_PATHS]
    assert [p for batch in sent for p in batch] == paths[:-5]
