"""When the fast lane may take a request on a keep-alive connection (shared.aio.fast_lane).

These drive one FastConnection directly, with a transport that records what is written, so the
moment a request arrives can be placed exactly: while aiohttp handles a request before it, or
after aiohttp has written its answer but before aiohttp's request loop has come back (a loop
iteration later), which is where busy keep-alive clients send their next request.

Pipelining: aiohttp stops reading at 32 queued requests; when the lane drains the queue it must
refill it and resume reading (issue #11: 40 pipelined lane requests got 32 answers, then none).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry, Counter, Histogram

from plugin_streams.shared.aio.fast_lane import LANE, FastConnection, FastLaneRunner, FastLaneServer
from plugin_streams.shared.aio.observe import OBSERVER, Observer

FAST_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


class Lane:
    """Takes requests for /fast (answering at once) and /park (answered later); declines the rest."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        if message.path == "/park":
            self.taken.append(message.path)
            conn.park(message)
            return True
        if message.path != "/fast":
            return False
        self.taken.append(message.path)
        conn.send(FAST_HEAD, b"fast")
        return True


class Transport(asyncio.Transport):
    """Records writes; `on_write` runs after each, inside the writer's call."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.wrote = asyncio.Event()
        self.on_write: Callable[[bytes], None] = lambda data: None
        self.closing = False
        self.paused = False  # reading, as aiohttp's flow control left it
        self.pauses = 0

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
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0


async def slow(request: web.Request) -> web.Response:
    return web.Response(text="slow")


async def ordinary(request: web.Request) -> web.Response:
    return web.Response(text="ordinary")  # /fast, when the lane does not take it


async def released(request: web.Request) -> web.Response:
    return web.Response(text="released")  # /park, when the lane gives it back


async def connection(lane: Lane, observer: Observer | None = None) -> tuple[FastConnection, Transport, web.AppRunner]:
    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", ordinary)
    app.router.add_get("/park", released)
    if observer is not None:
        app[OBSERVER] = observer
    return await connected(app, lane)


async def connected(app: web.Application, lane: object) -> tuple[FastConnection, Transport, web.AppRunner]:
    """One connection to `app` served by FastLaneRunner with `lane`, over a fake transport."""
    app[LANE] = lane  # type: ignore[misc]
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


def bodies(out: bytes) -> list[bytes]:
    """The body of each answer written, in order."""
    return [part.split(b"\r\n\r\n", 1)[1] for part in out.split(b"HTTP/1.1 ")[1:]]


async def test_forty_pipelined_lane_requests_get_forty_answers_and_reading_resumes() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:
        conn.data_received(request("/fast") * 40)  # one read: aiohttp queues 32 and stops reading
        out = await written(transport, 40)
        assert bodies(out) == [b"fast"] * 40 and lane.taken == ["/fast"] * 40
        assert transport.pauses >= 1 and not transport.paused  # paused at 32, resumed once drained
        conn.data_received(request("/fast") * 100 + request("/slow"))  # and again, past the limit
        out = await written(transport, 141)
        assert bodies(out)[40:] == [b"fast"] * 100 + [b"slow"] and not transport.paused
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_pipelined_requests_after_a_declined_one_are_answered_in_order() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:
        # The lane takes the first 40 (refilling past 32), declines /slow; aiohttp answers the
        # rest (the lane's own paths too: a request before them is aiohttp's) and resumes reading.
        conn.data_received(request("/fast") * 40 + request("/slow") + request("/fast") * 40)
        out = await written(transport, 81)
        assert bodies(out) == [b"fast"] * 40 + [b"slow"] + [b"ordinary"] * 40
        assert not transport.paused
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_requests_behind_a_parked_one_wait_then_all_get_answers() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:
        conn.data_received(request("/park") + request("/fast") * 40)
        await asyncio.sleep(0.05)
        assert transport.written == b"" and transport.paused  # 32 queued behind the parked one
        conn.answer_parked(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"parked")
        out = await written(transport, 41)
        assert bodies(out) == [b"parked"] + [b"fast"] * 40 and not transport.paused
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_a_parked_request_given_back_is_answered_before_those_behind_it() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:
        conn.data_received(request("/park") + request("/fast") * 40)
        await asyncio.sleep(0.05)
        assert transport.written == b""
        conn.release_parked()
        out = await written(transport, 41)
        assert bodies(out) == [b"released"] + [b"ordinary"] * 40 and not transport.paused
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_while_the_client_does_not_read_the_lane_takes_nothing_more() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:

        def full_after_ten(data: bytes) -> None:
            if transport.written.count(b"HTTP/1.1 200") == 10:
                transport.on_write = lambda data: None
                conn.pause_writing()  # the write buffer is past its high-water mark

        transport.on_write = full_after_ten
        conn.data_received(request("/fast") * 100)
        await asyncio.sleep(0.05)
        assert lane.taken == ["/fast"] * 10  # the rest wait (aiohttp's handler waits to drain)
        assert transport.written.count(b"HTTP/1.1 200") <= 11
        conn.resume_writing()
        out = await written(transport, 100)
        assert bodies(out) == [b"fast"] * 10 + [b"ordinary"] * 90
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_lane_answers_are_counted_and_logged_by_the_observer(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()

    class Metrics:
        requests = Counter("requests", "", ["method", "route", "status"], registry=registry)
        latency = Histogram("latency", "", ["method", "route"], registry=registry)

    lane = Lane()
    conn, transport, runner = await connection(lane, Observer(Metrics(), access_log=True))
    try:
        with caplog.at_level(logging.INFO, logger="plugin_streams.access"):
            conn.data_received(request("/fast"))
            conn.data_received(request("/park"))
            conn.answer_parked(b"HTTP/1.1 204 No Content\r\n\r\n")
            await written(transport, 1)
    finally:
        conn.connection_lost(None)
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "plugin_streams.access"]
    assert len(lines) == 2
    assert lines[0].startswith('method=GET path="/fast" query="" status=200 bytes=4 duration_ms=')
    assert lines[1].startswith('method=GET path="/park" query="" status=204 bytes=0 duration_ms=')
    assert all(line.endswith(" remote=127.0.0.1") for line in lines)
    assert registry.get_sample_value("requests_total", {"method": "GET", "route": "other", "status": "200"}) == 1
    assert registry.get_sample_value("requests_total", {"method": "GET", "route": "other", "status": "204"}) == 1
    assert registry.get_sample_value("latency_count", {"method": "GET", "route": "other"}) == 2


async def test_without_the_aiohttp_internals_it_needs_the_lane_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(RequestHandler, "_resume_reading_if_drained")  # as if aiohttp had changed
    app = web.Application()
    app.router.add_get("/fast", ordinary)
    app[LANE] = Lane()
    runner = FastLaneRunner(app, access_log=None)
    with caplog.at_level(logging.WARNING, logger="plugin_streams.shared.aio.fast_lane"):
        await runner.setup()
    try:
        assert runner.server is not None and not isinstance(runner.server, FastLaneServer)
        assert not isinstance(runner.server(), FastConnection)
        assert any(
            "fast lane off" in r.getMessage() and "RequestHandler._resume_reading_if_drained" in r.getMessage()
            for r in caplog.records
        )
    finally:
        await runner.cleanup()


# -- requests with bodies ----------------------------------------------------------------------


def post(path: str, body: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


class BodyLane:
    """Takes POST /body with the body it was offered (echoing it); declines POST /echo."""

    body_limit = 16

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        if message.path != "/body":
            return False
        self.bodies.append(conn.body)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(conn.body), conn.body)
        return True


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=b"aiohttp:" + await request.read())


async def body_connection(lane: object) -> tuple[FastConnection, Transport, web.AppRunner]:
    app = web.Application()
    app.router.add_post("/body", echo)
    app.router.add_post("/echo", echo)
    return await connected(app, lane)


async def test_a_body_that_came_whole_is_offered_to_a_lane_taking_bodies() -> None:
    lane = BodyLane()
    conn, transport, runner = await body_connection(lane)
    try:
        conn.data_received(post("/body", b"hello") + post("/echo", b"kept") + post("/body", b"again"))
        out = await written(transport, 3)
        # The declined one keeps its body for aiohttp (the lane only looked), and what follows
        # a request aiohttp has is aiohttp's, in order.
        assert bodies(out) == [b"hello", b"aiohttp:kept", b"aiohttp:again"]
        assert lane.bodies == [b"hello"]
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_a_body_still_arriving_or_over_the_limit_is_aiohttps() -> None:
    lane = BodyLane()
    conn, transport, runner = await body_connection(lane)
    try:
        whole = post("/body", b"split body")
        conn.data_received(whole[:-4])  # the head and part of the body
        await asyncio.sleep(0.01)
        conn.data_received(whole[-4:])
        out = await written(transport, 1)
        conn.data_received(post("/body", b"x" * 17))  # one byte over the lane's limit
        out = await written(transport, 2)
        assert bodies(out) == [b"aiohttp:split body", b"aiohttp:" + b"x" * 17] and lane.bodies == []
        conn.data_received(post("/body", b"x" * 16))  # and at the limit, the lane's
        out = await written(transport, 3)
        assert bodies(out)[2] == b"x" * 16 and lane.bodies == [b"x" * 16]
    finally:
        conn.connection_lost(None)
        await runner.cleanup()


async def test_a_lane_without_a_body_limit_never_sees_a_request_with_a_body() -> None:
    lane = Lane()
    conn, transport, runner = await connection(lane)
    try:
        conn.data_received(b"GET /fast HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc")
        out = await written(transport, 1)
        assert bodies(out) == [b"ordinary"] and lane.taken == []
    finally:
        conn.connection_lost(None)
        await runner.cleanup()
