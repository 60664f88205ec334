"""The live tail in protocol mode (SSE and long-poll) against the origin, an edge and the Node
reference server: in order, exactly once, ended by closure, and resumed from any offset it
yielded (mid-batch too) without repeating or skipping a message or a byte."""

from __future__ import annotations

import asyncio

import pytest

from plugin_streams import Message, NotFound, Streams, TailHandle
from tests.client.test_tail import Collected, within

MODES = ["sse", "long-poll"]


class StopAt:
    """A callback that collects messages and stops its tail once it has `count` of them."""

    def __init__(self, got: Collected, count: int) -> None:
        self.got = got
        self.count = count
        self.handle: TailHandle | None = None

    def __call__(self, message: Message) -> None:
        self.got(message)
        if len(self.got) == self.count:
            assert self.handle is not None
            self.handle.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_tail_delivers_in_order_and_ends_on_closure(protocol_url: str, name: str, mode: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name)
        await stream.append_batch([0, 1, 2])
        got = Collected()
        handle = stream.tail(callback=got, mode=mode)
        await got.reach(3)
        for i in range(3, 8):
            await stream.append(i)
        await stream.append_batch([8, 9])
        final = await stream.close()
        await within(10, handle.done)
        assert handle.closed
        assert [m.data for m in got] == list(range(10))
        assert handle.offset == got[-1].offset == final


@pytest.mark.parametrize("mode", MODES)
async def test_a_tail_stopped_mid_batch_resumes_exactly(protocol_url: str, name: str, mode: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name)
        await stream.append_batch(list(range(6)))
        await stream.append_batch(list(range(6, 12)))
        for stop_after in (2, 6, 9):
            got = Collected()
            stopper = StopAt(got, stop_after)
            first = stopper.handle = stream.tail(callback=stopper, mode=mode)
            await within(10, first.done)
            assert [m.data for m in got] == list(range(stop_after))
            rest = Collected()
            resumed = stream.tail(first.offset, rest, mode=mode)
            await rest.reach(12 - stop_after)
            await asyncio.sleep(0.2)  # nothing more may come
            resumed.stop()
            await within(5, resumed.done)
            assert [m.data for m in rest] == list(range(stop_after, 12))


@pytest.mark.parametrize("mode", MODES)
async def test_binary_tail_resumes_byte_exact(protocol_url: str, name: str, mode: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name, "application/octet-stream")
        await stream.append(b"\x00\x01")
        got = Collected()
        handle = stream.tail(callback=got, mode=mode)
        await got.reach(1)
        handle.stop()
        await within(5, handle.done)
        await stream.append(b"\xff\n")
        await stream.append(b"\r\x80")
        await stream.close()
        rest = Collected()
        resumed = stream.tail(handle.offset, rest, mode=mode)
        await within(10, resumed.done)
        assert b"".join(m.data for m in [*got, *rest]) == b"\x00\x01\xff\n\r\x80"
        assert resumed.closed


@pytest.mark.parametrize("mode", MODES)
async def test_tail_from_now_sees_only_new_messages(protocol_url: str, name: str, mode: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name, "text/plain")
        await stream.append("old")
        got = Collected()
        handle = stream.tail("now", got, mode=mode)
        await asyncio.sleep(0.3)
        await stream.append("new")
        await got.reach(1)
        await stream.close()
        await within(10, handle.done)
        assert [m.data for m in got] == ["new"]


async def test_tail_of_a_missing_stream_fails(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        handle = streams.stream(name).tail(callback=lambda m: None)
        with pytest.raises(NotFound):
            await within(10, handle.done)
