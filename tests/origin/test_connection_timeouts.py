"""Slow or silent connections are closed by the server (issue 11, "sockets are not free to hold").

Origin and edge alike: a request head that never completes, a body that stops arriving, a
connection that never sends a request, and an idle keep-alive connection are each closed
within their timeout (--header-timeout, --body-timeout, --idle-timeout; short here). Before,
400 such connections stayed open 150 s on both processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, process_group

pytestmark = pytest.mark.timeout(120)

CONNECTIONS = 50
TIMEOUTS = ("--header-timeout", "2", "--body-timeout", "2", "--idle-timeout", "3")
#: Closed within its timeout plus this margin (a loaded two-core machine); never a whole minute.
MARGIN = 4.0


@pytest.fixture(params=["origin", "edge"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    with process_group(tmp_path, long_poll_timeout=5.0) as group:
        origin = group.origin("--engine", "memory", *TIMEOUTS)
        yield origin if request.param == "origin" else group.edge(origin.url, *TIMEOUTS)


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float | None, bytes]:
    """Seconds until the server closed the connection (None: still open after `limit`), and what it sent."""
    started = time.monotonic()
    received = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        return None, received
    except ConnectionResetError:
        pass
    return time.monotonic() - started, received


async def many(kind: Callable[[str], Awaitable[tuple[float | None, bytes]]], url: str) -> list[float | None]:
    results = await asyncio.gather(*(kind(url) for _ in range(CONNECTIONS)))
    return [seconds for seconds, _ in results]


async def silent(url: str) -> tuple[float | None, bytes]:
    reader, writer = await connect(url)
    try:
        return await closed_after(reader, 2 + MARGIN)
    finally:
        writer.close()


async def slow_head(url: str) -> tuple[float | None, bytes]:
    reader, writer = await connect(url)

    async def dribble() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(100):  # a header line now and then, never the blank line that ends the head
            await asyncio.sleep(0.5)
            writer.write(b"X-Slow-%d: 1\r\n" % i)

    sending = asyncio.ensure_future(dribble())
    try:
        return await closed_after(reader, 2 + MARGIN)
    finally:
        sending.cancel()
        writer.close()


async def slow_body(url: str) -> tuple[float | None, bytes]:
    reader, writer = await connect(url)
    writer.write(
        b"POST /v1/stream/slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789"
    )
    try:
        return await closed_after(reader, 2 + MARGIN)
    finally:
        writer.close()


async def idle(url: str) -> tuple[float | None, bytes]:
    reader, writer = await connect(url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    await reader.readexactly(3)  # "ok\n"
    try:
        return await closed_after(reader, 3 + MARGIN)
    finally:
        writer.close()


async def test_silent_connections_are_closed(server: ServerProcess) -> None:
    seconds = await many(silent, server.url)
    assert None not in seconds, f"{seconds.count(None)} of {CONNECTIONS} silent connections still open"


async def test_a_head_that_never_ends_gets_408_and_is_closed(server: ServerProcess) -> None:
    results = await asyncio.gather(*(slow_head(server.url) for _ in range(CONNECTIONS)))
    assert all(seconds is not None for seconds, _ in results), "slow heads still open"
    assert all(sent.startswith(b"HTTP/1.1 408 ") for _, sent in results), results[0][1]
    assert all(seconds >= 1.5 for seconds, _ in results if seconds is not None)  # not before its time


async def test_a_body_that_stops_gets_408_and_is_closed(server: ServerProcess) -> None:
    await create_stream(server.url)
    results = await asyncio.gather(*(slow_body(server.url) for _ in range(CONNECTIONS)))
    assert all(seconds is not None for seconds, _ in results), "stalled bodies still open"
    for _, sent in results:
        assert sent.startswith(b"HTTP/1.1 408 "), sent[:200]
        assert b"request body stalled" in sent


async def test_idle_keep_alive_connections_are_closed(server: ServerProcess) -> None:
    seconds = await many(idle, server.url)
    assert None not in seconds, f"{seconds.count(None)} of {CONNECTIONS} idle connections still open"
    assert min(s for s in seconds if s is not None) >= 2.0  # the idle timeout, not the header one


async def test_a_slow_but_steady_body_is_not_cut(server: ServerProcess) -> None:
    """The body timeout is about progress: a body trickling in for longer than it is fine."""
    await create_stream(server.url)
    reader, writer = await connect(server.url)
    writer.write(b"POST /v1/stream/slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\n")
    for byte in b"abcdef":  # 6 s in all, each byte well within the 2 s body timeout
        await asyncio.sleep(1.0)
        writer.write(bytes([byte]))
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 204 "), head


async def create_stream(url: str) -> None:
    reader, writer = await connect(url)
    writer.write(b"PUT /v1/stream/slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 201"), head
