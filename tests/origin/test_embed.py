"""The embedding API a regional replica uses: install, apply, drop, look up, recover, serve reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from plugin_streams.origin.embed import Diverged, EmbeddedOrigin, ReadSettings, StreamConfig
from plugin_streams.origin.storage import ForkLink, MemoryStore
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import json_error_middleware
from plugin_streams.shared.auth import AccessPolicy, policy_from_mapping
from plugin_streams.shared.replication import RecordFrame

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
SETTINGS = ReadSettings(
    long_poll_timeout=0.2, sse_max_age=1.0, sse_keepalive=1.0, sse_client_buffer=1024, sse_write_timeout=1.0
)


class FakeClock:
    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def _config(path: str, generation: int, fork: ForkLink | None = None) -> StreamConfig:
    return StreamConfig(generation, path, "text/plain", None, None, 0, fork=fork)


def _frame(start: int, payload: bytes, *, closed: bool = False, written_ms: int = 1) -> RecordFrame:
    return RecordFrame(start, payload, closed, written_ms)


async def _started(clock: FakeClock | None = None) -> EmbeddedOrigin:
    local = EmbeddedOrigin(MemoryStore(), clock or FakeClock())
    assert await local.start() == []
    return local


async def test_an_installed_incarnation_holds_its_path_and_takes_records_at_the_origins_positions() -> None:
    clock = FakeClock()
    local = await _started(clock)
    state = await local.install(_config("a", 3), None, 0)
    assert local.at("a") is state and local.incarnation(3) is state and len(local) == 1
    clock.now_ms += 5
    assert await local.apply(state, [_frame(0, b"hello"), _frame(5, b"!", closed=True)]) == clock.now_ms
    assert (state.tail, state.closed) == (6, True)
    await local.close()


async def test_a_record_that_does_not_start_at_the_tail_is_refused() -> None:
    local = await _started()
    state = await local.install(_config("a", 1), None, 0)
    await local.apply(state, [_frame(0, b"abc")])
    with pytest.raises(Diverged):
        await local.apply(state, [_frame(2, b"c")])
    assert state.tail == 3


async def test_an_incarnation_whose_start_the_origin_dropped_begins_at_its_earliest_record() -> None:
    local = await _started()
    state = await local.install(_config("a", 1), None, 100)
    assert (state.tail, state.retained_from) == (100, 100)
    await local.apply(state, [_frame(100, b"x")])
    assert state.tail == 101


async def test_an_older_incarnation_is_kept_only_as_a_source_when_a_newer_one_holds_the_path() -> None:
    local = await _started()
    newer = await local.install(_config("a", 5), None, 0)
    older = await local.install(_config("a", 2), None, 0)
    assert older.removed and local.at("a") is newer and local.incarnation(2) is older
    assert local.held() == [newer]


async def test_dropping_a_source_that_feeds_a_fork_keeps_its_data_until_the_fork_goes() -> None:
    local = await _started()
    source = await local.install(_config("src", 1), None, 0)
    await local.apply(source, [_frame(0, b"abcd")])
    fork = await local.install(_config("fork", 2, ForkLink(1, "src", 4, None, 0)), source, 0)
    assert fork.tail == 4 and local.feeds_forks(source) and not local.feeds_forks(fork)
    await local.drop(source)
    assert source.soft_deleted and local.incarnation(1) is source
    await local.drop(fork)
    assert local.at("fork") is None and local.incarnation(2) is None
    assert local.incarnation(1) is None  # the last fork's going released the source


async def test_records_for_a_dropped_incarnation_are_ignored() -> None:
    local = await _started()
    state = await local.install(_config("a", 1), None, 0)
    await local.drop(state)
    assert local.at("a") is None and state.removed
    assert await local.apply(state, [_frame(0, b"late")]) is None
    assert state.tail == 0


async def test_waiters_wake_when_records_arrive() -> None:
    local = await _started()
    state = await local.install(_config("a", 1), None, 0)
    waiter = asyncio.ensure_future(local.changed(state))
    await asyncio.sleep(0)
    assert not waiter.done()
    await local.apply(state, [_frame(0, b"x")])
    async with asyncio.timeout(1):
        await waiter


async def test_a_reopened_engine_recovers_what_was_applied_oldest_first(tmp_path: Path) -> None:
    local = EmbeddedOrigin.on_disk(str(tmp_path), FakeClock())
    await local.start()
    await local.install(_config("b", 7), None, 0)
    first = await local.install(_config("a", 4), None, 0)
    await local.apply(first, [_frame(0, b"kept")])
    await local.close()
    reopened = EmbeddedOrigin.on_disk(str(tmp_path), FakeClock())
    recovered = await reopened.start()
    assert [(s.config.path, s.generation, s.tail) for s in recovered] == [("a", 4, 4), ("b", 7, 0)]
    await reopened.close()


async def test_the_read_handlers_serve_the_embedded_copy(aiohttp_client: AiohttpClient) -> None:
    local = await _started()
    state = await local.install(_config("logs/app", 9), None, 0)
    await local.apply(state, [_frame(0, b"replicated")])
    reads = local.read_handlers(SETTINGS)

    async def get(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return await reads.head(request, request.match_info["path"])
        return await reads.get(request, request.match_info["path"])

    app = web.Application()
    app.router.add_get("/{path:.+}", get)
    client = await aiohttp_client(app)
    response = await client.get("/logs/app", params={"offset": "-1"})
    assert response.status == 200 and await response.read() == b"replicated"
    assert response.headers[h.STREAM_NEXT_OFFSET] == "0000000000000009_0000000000000010"
    head = await client.head("/logs/app")
    assert head.status == 200
    local.begin_shutdown()
    await local.close()


def _rest_app(local: EmbeddedOrigin, policy: AccessPolicy) -> web.Application:
    """The embedded REST reads mounted as the edge mounts them: `/<name>` describes, `/<name>/<action>`."""
    rest = local.rest_handlers(SETTINGS, policy)

    async def get(request: web.Request) -> web.StreamResponse:
        name, _, action = request.match_info["path"].partition("/")
        if action == "read":
            return await rest.read(request, name)
        if action == "tail":
            return await rest.tail(request, name)
        return await rest.describe(request, name)

    app = web.Application(middlewares=[json_error_middleware])  # errors worded as the REST API's
    app.router.add_get("/{path:.+}", get)
    return app


async def test_the_rest_handlers_describe_read_and_tail_the_embedded_copy(aiohttp_client: AiohttpClient) -> None:
    local = await _started()
    state = await local.install(StreamConfig(9, "app", "application/json", None, None, 0), None, 0)
    # Stored as the origin stores JSON messages: compact, each followed by a comma.
    await local.apply(state, [_frame(0, b'{"n":1},'), _frame(8, b'{"n":2},')])
    client = await aiohttp_client(_rest_app(local, AccessPolicy()))

    described = await client.get("/app")
    assert described.status == 200
    assert (await described.json())["next_offset"] == "0000000000000009_0000000000000016"
    page = await client.get("/app/read", params={"after": "-1"})
    assert page.status == 200
    body = await page.json()
    assert [m["data"] for m in body["messages"]] == [{"n": 1}, {"n": 2}]
    assert [m["offset"] for m in body["messages"]] == ["0000000000000009_0000000000000008", body["next_offset"]]

    # A long-poll at the tail is woken by the next replicated record, as at the origin.
    waiting = asyncio.ensure_future(client.get("/app/tail", params={"mode": "long-poll", "after": "now"}))
    await asyncio.sleep(0.05)
    await local.apply(state, [_frame(16, b'{"n":3},')])
    polled = await waiting
    assert polled.status == 200 and [m["data"] for m in (await polled.json())["messages"]] == [{"n": 3}]

    # SSE from an offset: one event per message, its id the message's offset; closure ends it.
    await local.apply(state, [_frame(24, b"", closed=True)])
    tail = await client.get("/app/tail", params={"after": "0000000000000009_0000000000000008"})
    assert tail.status == 200 and tail.headers[h.CONTENT_TYPE] == h.SSE_CONTENT_TYPE
    text = (await tail.read()).decode()
    assert 'data:{"n":2}' in text and 'data:{"n":3}' in text and "event:closed" in text.replace(" ", "")
    assert "id:0000000000000009_0000000000000016" in text.replace(" ", "")
    local.begin_shutdown()
    await local.close()


async def test_the_rest_handlers_check_access_with_the_policy_they_are_given(aiohttp_client: AiohttpClient) -> None:
    local = await _started()
    await local.install(_config("private/x", 2), None, 0)
    await local.install(_config("public/y", 3), None, 0)
    grant = {"name": "reader", "token": "secret", "read": ["private/"]}
    rest = local.rest_handlers(SETTINGS, policy_from_mapping({"public_read": ["public/"], "token": [grant]}))

    async def read(request: web.Request) -> web.StreamResponse:
        return await rest.read(request, request.match_info["name"])

    app = web.Application(middlewares=[json_error_middleware])
    app.router.add_get("/{name:.+}", read)
    client = await aiohttp_client(app)
    reader = {h.AUTHORIZATION: "Bearer secret"}
    assert (await client.get("/public/y")).status == 200
    assert (await client.get("/private/x")).status == 401
    assert (await client.get("/private/x", headers=reader)).status == 200
    assert (await client.get("/public/y", headers={h.AUTHORIZATION: "Bearer wrong"})).status == 401
    await local.close()
