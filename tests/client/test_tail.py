"""The client's live tail: exactly once, in order, across reconnects, an origin crash and
restart, and an edge failing over to another (the last two in both APIs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

from plugin_streams import Message, NotFound, Stream, Streams
from tests.client.conftest import Processes
from tests.support.processes import OriginProcess

T = TypeVar("T")


class Collected(list[Message]):
    """A tail callback that keeps messages and lets a test wait for a count of them."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.append(message)
        self._changed.set()

    async def reach(self, count: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self) < count:
                self._changed.clear()
                await self._changed.wait()


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.mark.parametrize("mode", ["sse", "long-poll"])
async def test_tail_delivers_in_order_and_ends_on_closure(shared_origin: OriginProcess, name: str, mode: str) -> None:
    async with Streams(shared_origin.url) as streams:
        stream = await streams.create(name)
        before = await stream.append_batch([0, 1, 2])
        got = Collected()
        handle = stream.tail(before[0], got, mode=mode)
        await got.reach(2)
        for i in range(3, 8):
            await stream.append(i)
        await stream.close()
        await within(10, handle.done)
        assert handle.closed
        assert [m.data for m in got] == list(range(1, 8))
        assert handle.offset == got[-1].offset


async def test_async_callbacks_stop_and_now(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        stream = await streams.create(name)
        await stream.append("old")
        got = Collected()

        async def callback(message: Message) -> None:
            await asyncio.sleep(0.01)
            got(message)
            if message.data == 2:
                handle.stop()  # from inside the callback: stops after this message

        handle = stream.tail("now", callback)
        await asyncio.sleep(0.3)
        for i in range(4):
            await stream.append(i)
        await within(10, handle.done)
        assert [m.data for m in got] == [0, 1, 2] and not handle.closed
        idle = stream.tail(callback=got)
        await got.reach(8)  # from the start: old, 0, 1, 2, 3
        idle.stop()
        await within(5, idle.done)


async def test_tail_of_a_missing_stream_fails(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        handle = streams.stream(name).tail(callback=lambda m: None)
        with pytest.raises(NotFound):
            await within(10, handle.done)


async def write_numbers(stream: Stream, count: int, delay: float) -> list[str | None]:
    offsets = []
    for i in range(count):
        offsets.append(await stream.append(i))
        await asyncio.sleep(delay)
    return offsets


#: Each API's path under a server's URL (the REST API's is added by the client itself).
API_PATHS = {"rest": "", "protocol": "/v1/stream"}


@pytest.mark.parametrize("api", API_PATHS)
async def test_exactly_once_across_an_origin_kill_and_restart(processes: Processes, api: str) -> None:
    origin = processes.origin("--sse-keepalive", "0.5")
    port = urlsplit(origin.url).port
    assert port is not None
    got = Collected()
    url = origin.url + API_PATHS[api]
    async with Streams(url, retry_for=60) as writer, Streams(url) as reader:
        stream = await writer.create("orders")
        handle = reader.stream("orders").tail(callback=got)
        writing = asyncio.ensure_future(write_numbers(stream, 150, 0.01))
        await got.reach(40)
        await asyncio.to_thread(origin.kill)  # SIGKILL mid-stream
        assert not writing.done()
        await asyncio.sleep(0.5)
        restarted = OriginProcess(origin.data_dir, "--port", str(port), "--sse-keepalive", "0.5")
        processes.started.append(restarted)
        await asyncio.to_thread(restarted.start)
        offsets = await within(60, writing)
        await stream.close()
        await within(30, handle.done)
    assert [m.data for m in got] == list(range(150)), processes.logs()
    assert len({m.offset for m in got}) == 150
    if api == "rest":  # (the protocol gives one offset per response, not one per message)
        assert [m.offset for m in got if m.offset in offsets] == [o for o in offsets if o is not None]
    async with Streams(restarted.url + API_PATHS[api]) as check:
        assert [m.data async for m in check.stream("orders").read()] == list(range(150))


@pytest.mark.parametrize("api", API_PATHS)
async def test_exactly_once_across_an_edge_failover(processes: Processes, api: str) -> None:
    origin = processes.origin()
    first = processes.edge(origin.url)
    second = processes.edge(origin.url)
    urls = [first.url + API_PATHS[api], second.url + API_PATHS[api]]
    got = Collected()
    async with Streams(urls, retry_for=60) as writer, Streams(urls) as reader:
        stream = await writer.create("events")
        handle = reader.stream("events").tail(callback=got)
        writing = asyncio.ensure_future(write_numbers(stream, 150, 0.01))
        await got.reach(40)
        await asyncio.to_thread(first.kill)  # the edge both clients were using goes away
        assert not writing.done()
        await within(60, writing)
        await stream.close()
        await within(30, handle.done)
        assert reader.transport.base.startswith(second.url)
    assert [m.data for m in got] == list(range(150)), processes.logs()
    async with Streams(origin.url + API_PATHS[api]) as check:
        assert [m.data async for m in check.stream("events").read()] == list(range(150))


async def test_stop_before_the_tail_started(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        handle = streams.stream(name).tail(callback=lambda m: None)
        handle.stop()
        await within(5, handle.done)
        assert handle.delivered == 0
