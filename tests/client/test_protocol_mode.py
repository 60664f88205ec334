"""The async client in protocol mode against three real servers: this project's origin, an edge
in front of one, and the Node reference server (`protocol_url` runs every test on each).

Resources, appends with idempotent producers, reads resumed from every message, closure, and
the protocol's errors as the client's exception classes."""

from __future__ import annotations

import uuid

import pytest

from plugin_streams import Conflict, NotFound, NotSupported, Retention, StreamClosed, Streams
from plugin_streams._api import Producer
from tests.client.conftest import PROTOCOL_ROOT
from tests.client.flaky import FlakyGateway


async def test_the_url_path_chooses_the_protocol(protocol_url: str) -> None:
    async with Streams(protocol_url) as streams:
        assert streams.api_name == "protocol"
    async with Streams(protocol_url.removesuffix(PROTOCOL_ROOT), api="protocol") as streams:
        assert streams.transport.bases == [protocol_url]  # /v1/stream when the URL has no path


async def test_create_describe_delete(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name)
        assert (await streams.create(name)).name == name  # the same settings: confirmed
        with pytest.raises(Conflict) as mismatch:
            await streams.create(name, "text/plain")
        assert mismatch.value.status == 409 and mismatch.value.code == "conflict"
        info = await streams.get(name)
        assert (info.name, info.content_type, info.closed) == (name, "application/json", False)
        await stream.append(1)
        assert (await streams.get(name)).next_offset > info.next_offset
        timed = await streams.create(name + "-ttl", "text/plain", ttl_seconds=3600)
        assert (await timed.info()).ttl_seconds == 3600
        assert await streams.exists(name)
        await streams.delete(name)
        assert not await streams.exists(name)
        with pytest.raises(NotFound) as missing:
            await streams.get(name)
        assert missing.value.status == 404 and missing.value.code == "not_found"
        with pytest.raises(NotFound):
            await streams.delete(name)
        with pytest.raises(NotFound):
            await streams.stream(name).append(2)
        with pytest.raises(NotFound):
            [m async for m in streams.stream(name).read()]


async def test_what_the_protocol_lacks_is_not_supported(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        with pytest.raises(NotSupported, match="protocol"):
            [info async for info in streams.list()]
        with pytest.raises(NotSupported, match="retention"):
            await streams.create(name, retention=Retention(max_age_seconds=60))
        assert not await streams.exists(name)  # nothing was sent


async def test_json_reads_resume_exactly_after_every_message(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name)
        first = await stream.append({"n": 0})
        batch = await stream.append_batch([{"n": i} for i in range(1, 25)])
        nested = await stream.append([1, 2])  # one message that is a list
        assert await stream.append_batch([]) == []
        # The protocol gives the offset after an append: the last message's; None before it.
        assert first is not None and nested is not None and batch[:-1] == [None] * 23
        assert first < str(batch[-1]) < nested == (await stream.info()).next_offset
        expected = [{"n": i} for i in range(25)] + [[1, 2]]
        got = [m async for m in stream.read()]
        assert [m.data for m in got] == expected
        assert got[-1].offset == nested
        for index, message in enumerate(got):
            assert [m.data async for m in stream.read(after=message.offset)] == expected[index + 1 :]
        # A server offset from an append is a place to resume too.
        assert [m.data async for m in stream.read(after=first)] == expected[1:]


async def test_text_and_binary_streams_are_byte_exact(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        blob = await streams.create(name + "-b", "application/octet-stream")
        first = await blob.append(b"\x00\x01\xff")
        await blob.append_batch([b"\n\r", b"\x80"])
        assert b"".join([m.data async for m in blob.read()]) == b"\x00\x01\xff\n\r\x80"
        assert b"".join([m.data async for m in blob.read(after=first)]) == b"\n\r\x80"
        text = await streams.create(name + "-t", "text/plain")
        await text.append("héllo\n")
        middle = await text.append("wörld")
        await text.append("!")
        assert "".join([m.data async for m in text.read()]) == "héllo\nwörld!"
        assert [m.data async for m in text.read(after=middle)] == ["!"]
        with pytest.raises(TypeError):
            await blob.append(3)


async def test_close_is_final_and_idempotent(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name, "text/plain")
        await stream.append("a")
        final = await stream.close()
        assert await stream.close() == final
        assert await streams.stream(name).close() == final  # another producer's close too
        with pytest.raises(StreamClosed) as closed:
            await streams.stream(name).append("b")
        assert isinstance(closed.value, Conflict) and closed.value.details["next_offset"] == final
        info = await streams.get(name)
        assert info.closed and info.next_offset == final
        assert [m.data async for m in stream.read()] == ["a"]


async def test_a_repeated_producer_tuple_stores_nothing_twice(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        await streams.create(name)
        producer = Producer(f"p-{uuid.uuid4().hex[:6]}", 0, 0)
        stored = await streams.api.append(name, b"[1]", "application/json", producer, close=False)
        again = await streams.api.append(name, b"[1]", "application/json", producer, close=False)
        assert not stored.duplicate and again.duplicate
        assert [m.data async for m in streams.stream(name).read()] == [1]


async def test_retried_appends_never_duplicate(protocol_url: str, name: str) -> None:
    gateway = FlakyGateway(protocol_url.removesuffix(PROTOCOL_ROOT), lose_every=2)
    url = await gateway.start()
    try:
        async with Streams(url + PROTOCOL_ROOT) as streams:
            stream = await streams.create(name)
            for i in range(8):
                await stream.append({"i": i})
            await stream.append_batch([{"i": i} for i in range(8, 12)])
            final = await stream.close()
        assert gateway.lost >= 5  # every other append's answer was lost
        async with Streams(protocol_url) as direct:
            assert [m.data async for m in direct.stream(name).read()] == [{"i": i} for i in range(12)]
            assert (await direct.get(name)).next_offset == final
    finally:
        await gateway.close()


async def test_a_restarted_producer_claims_a_newer_epoch(protocol_url: str, name: str) -> None:
    producer = f"orders-{uuid.uuid4().hex[:6]}"
    async with Streams(protocol_url) as streams:
        await streams.create(name)
        first_run = streams.stream(name, producer_id=producer)
        for i in range(3):
            await first_run.append(i)
        second_run = streams.stream(name, producer_id=producer)
        assert second_run.epoch > first_run.epoch
        await second_run.append(3)
        # The old run is fenced (403 with the server's epoch), claims the one after it, once each.
        await first_run.append(4)
        assert first_run.epoch == second_run.epoch + 1 and first_run.seq == 1
        await second_run.append(5)
        third = streams.stream(name, producer_id=producer, epoch=0)  # a stale explicit epoch
        await third.append(6)
        assert third.epoch > second_run.epoch
        assert [m.data async for m in streams.stream(name).read()] == [0, 1, 2, 3, 4, 5, 6]


async def test_a_producer_goes_on_after_its_stream_is_recreated(protocol_url: str, name: str) -> None:
    async with Streams(protocol_url) as streams:
        stream = await streams.create(name)
        await stream.append_batch([1, 2])
        await stream.append(3)
        await streams.delete(name)
        await streams.create(name)
        # The new stream does not know this producer: its seq 2 is a gap, so the handle opens a new epoch.
        await stream.append(4)
        assert stream.seq == 1
        assert [m.data async for m in streams.stream(name).read()] == [4]
