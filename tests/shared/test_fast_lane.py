"""When the fast lane may take a request on a keep-alive connection (shared.aio.fast_lane).

These drive one FastConnection directly, with a transport that records what is written, so the
moment a request arrives can be placed exactly: while aiohttp handles a request before it, or
after aiohttp has written its answer but before aiohttp's request loop has come back (a loop
iteration later), which is where busy keep-alive clients send their next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage

from shared.aio.fast_lane import LANE, FastConnection, FastLaneRunner

FAST_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast"


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


class Lane:
    """Takes requests for /fast (answering at once); declines the rest."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        if message.path != "/fast":
            return False
        self.taken.append(message.path)
        conn.send(FAST_ANSWER)
        return True


class Transport(asyncio.Transport):
    """Records writes; `on_write` runs after each, inside the writer's call."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.wrote = asyncio.Event()
        self.on_write: Callable[[bytes], None] = lambda data: None
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data
        self.wrote.set()
        self.on_write(bytes(data))

    def writelines(self, chunks: object) -> None:
        for chunk in chunks:  # type: ignore[attr-defined]
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def slow(request: web.Request) -> web.Response:
    return web.Response(text="slow")


async def ordinary(request: web.Request) -> web.Response:
    return web.Response(text="ordinary")  # /fast, when the lane does not take it


async def connection(lane: Lane) -> tuple[FastConnection, Transport, web.AppRunner]:
    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", ordinary)
    app[LANE] = lane
    runner = FastLaneRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    conn = runner.server()
    assert isinstance(conn, FastConnection)
    transport = Transport()
    conn.connection_made(transport)
    return conn, transport, runner


async def written(transport: Transport, count: int) -> bytes:
    async with asyncio.timeout(5):
        while transport.written.count(b"HTTP/1.1 200") < count:
            transport.wrote.clear()
            await transport.wrote.wait()
    return bytes(transport.written)


async def test_a_request_arriving_before_aiohttp_comes_back_takes_the_lane() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    loop = asyncio.get_running_loop()
    try:

        def next_request_soon(data: bytes) -> None:
            if data.endswith(b"slow"):  # the last bytes of aiohttp's answer
                transport.on_write = lambda data: None
                # Runs in the next loop iteration, before aiohttp's request loop resumes.
                loop.call_soon(conn.data_received, request("/fast"))

        transport.on_write = next_request_soon
        conn.data_received(request("/slow"))
        out = await written(transport, 2)
        assert lane.taken == ["/fast"]
        assert out.index(b"slow") < out.index(b"fast")
        # aiohttp's loop came back to an empty queue and still serves what the lane declines.
        conn.data_received(request("/slow"))
        out = await written(transport, 3)
        assert out.endswith(b"slow") and lane.taken == ["/fast"]
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_a_request_arriving_while_aiohttp_answers_the_one_before_stays_behind_it() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:

        def next_request_now(data: bytes) -> None:
            if b"HTTP/1.1 200" in data:  # aiohttp is still inside its handling of /slow
                transport.on_write = lambda data: None
                conn.data_received(request("/fast"))

        transport.on_write = next_request_now
        conn.data_received(request("/slow"))
        out = await written(transport, 2)
        assert lane.taken == []  # aiohttp had a request before it: aiohttp answers it, in order
        assert out.endswith(b"ordinary") and out.index(b"slow") < out.index(b"ordinary")
        transport.written.clear()
        conn.data_received(request("/slow") + request("/fast"))  # pipelined
        out = await written(transport, 2)
        assert lane.taken == [] and out.endswith(b"ordinary") and out.index(b"slow") < out.index(b"ordinary")
    finally:
        conn.connection_lost(None)
        await runner.cleanup()
