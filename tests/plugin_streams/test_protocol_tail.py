"""The protocol tail's connection logic (plugin_streams._protocol_tail) against a scripted server.

A data event is delivered only once its control event says where the stream continues: a
connection cut in between delivers nothing of it, and the next one asks again from the same
offset. Long-polls echo the server's cursor."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin_streams import Message, Streams
from plugin_streams._protocol_tail import sse_batch
from plugin_streams.tail import TailHandle

Script = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def finished(handle: TailHandle, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await handle.done


HEAD = {"Content-Type": "application/json", "Stream-Next-Offset": "0_0"}


@asynccontextmanager
async def serve(script: Script) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server at <url>/s answering HEAD itself and every GET by `script(request, nth GET)`."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(headers=HEAD)
        seen.append(dict(request.query))
        return await script(request, len(seen))

    app = web.Application()
    app.router.add_route("*", "/v1/stream/s", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/v1/stream")), seen
    finally:
        await server.close()


async def sse(request: web.Request, *events: str, cut: bool = False) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in events:
        await response.write(event.encode())
    if cut:
        assert request.transport is not None
        request.transport.close()  # the connection drops, no clean end
    return response


def data(json_text: str) -> str:
    return f"event: data\ndata:{json_text}\n\n"


def control(offset: str, closed: bool = False) -> str:
    extra = ',"streamClosed":true' if closed else ',"streamCursor":"1"'
    return f'event: control\ndata:{{"streamNextOffset":"{offset}"{extra}}}\n\n'


async def test_a_data_event_cut_off_before_its_control_is_asked_for_again() -> None:
    async def script(request: web.Request, count: int) -> web.StreamResponse:
        if count == 1:
            return await sse(request, data("[1,2]"), cut=True)
        if request.query["offset"] == "-1":
            return await sse(request, data("[1,2]"), control("0_2"), data("[3]"), control("0_3", closed=True))
        raise AssertionError(request.query)

    async with serve(script) as (url, seen):
        async with Streams(url) as streams:
            got: list[Message] = []
            handle = streams.stream("s").tail(callback=got.append)
            await finished(handle, 10)
        assert [(m.offset, m.data) for m in got] == [(",1", 1), ("0_2", 2), ("0_3", 3)]
        assert [q["offset"] for q in seen] == ["-1", "-1"]
        assert handle.closed and handle.offset == "0_3"


async def test_long_polls_echo_the_cursor_and_move_on_204s() -> None:
    async def script(request: web.Request, count: int) -> web.StreamResponse:
        headers = {"Stream-Next-Offset": "0_4", "Stream-Cursor": f"c{count}", "Stream-Up-To-Date": "true"}
        if count == 1:
            return web.Response(status=204, headers=headers)
        headers["Stream-Closed"] = "true"
        return web.Response(body=b'["x"]', headers={**headers, "Content-Type": "application/json"})

    async with serve(script) as (url, seen):
        async with Streams(url) as streams:
            got: list[Message] = []
            handle = streams.stream("s").tail("0_1", got.append, mode="long-poll")
            await finished(handle, 10)
        assert seen == [
            {"offset": "0_1", "live": "long-poll"},
            {"offset": "0_4", "live": "long-poll", "cursor": "c1"},
        ]
        assert got == [Message("0_4", "x")] and handle.closed


def test_sse_batches_decode_by_content_kind() -> None:
    encoded = base64.b64encode(b"\x00\xff\x10\x11").decode()
    split_lines = encoded[:4] + "\n" + encoded[4:]  # servers may cut base64 across data: lines
    assert sse_batch("bytes", True, "0_1", 0, [split_lines], "0_5") == [Message("0_5", b"\x00\xff\x10\x11")]
    assert sse_batch("text", False, "0_1", 0, ["ab", "c\nd"], "0_5") == [Message("0_5", "abc\nd")]
    assert sse_batch("json", False, "0_1", 1, ["[1,2]", "[3]"], "0_5") == [Message("0_1,2", 2), Message("0_5", 3)]
    assert sse_batch("json", False, "0_1", 0, [], "0_1") == []


@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_an_empty_sse_batch_is_no_message(kind: str) -> None:
    assert sse_batch(kind, kind == "bytes", "0_1", 0, [""], "0_1") == []  # type: ignore[arg-type]
