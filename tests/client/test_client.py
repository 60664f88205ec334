"""The async client against a real origin: resources, appends, paged reads, typed errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin_streams import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Message,
    NotFound,
    PayloadTooLarge,
    Retention,
    StreamClosed,
    Streams,
    StreamsError,
    Unauthorized,
    Unavailable,
)
from tests.client.flaky import FlakyGateway
from tests.support.processes import OriginProcess


async def test_create_get_list_delete(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        stream = await streams.create(name, retention=Retention(max_age_seconds=60), max_size=1000)
        assert stream.name == name
        info = await streams.get(name)
        assert (info.content_type, info.retention, info.max_size) == ("application/json", Retention(60, None), 1000)
        assert (await streams.create(name, retention={"max_age_seconds": 60}, max_size=1000)).name == name
        with pytest.raises(Conflict):
            await streams.create(name, "text/plain")
        await streams.create(name + "/b")
        assert [i.name async for i in streams.list(name, page_size=1)] == [name, name + "/b"]
        assert await streams.exists(name)
        await streams.delete(name)
        assert not await streams.exists(name)
        with pytest.raises(NotFound) as caught:
            await streams.get(name)
        assert caught.value.status == 404 and caught.value.code == "not_found"
        with pytest.raises(NotFound):
            await streams.delete(name)


async def test_append_and_read(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        stream = await streams.create(name)
        first = await stream.append({"n": 0})
        assert first is not None
        batch = await stream.append_batch([{"n": i} for i in range(1, 80)])
        assert len(batch) == 79 and batch == sorted(batch)
        nested = await stream.append([1, 2])  # one message that is a list
        assert await stream.append_batch([]) == []
        got = [m async for m in stream.read()]
        assert [m.data for m in got] == [{"n": i} for i in range(80)] + [[1, 2]]
        assert [m.offset for m in got] == [first, *batch, nested]
        # Resume after any message; several 1 KiB chunks, pages cut at `limit`.
        assert [m.data async for m in stream.read(after=batch[40], limit=7)] == [{"n": i} for i in range(42, 80)] + [
            [1, 2]
        ]
        assert [m async for m in stream.read(after=nested)] == []
        # A handle from streams.stream() learns the content type itself.
        other = streams.stream(name)
        assert (await other.append("x")) > nested


async def test_text_and_binary_streams(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        text = await streams.create(name + "-t", "text/plain")
        await text.append("hello\nworld")
        await text.append_batch(["a", b"b"])
        assert [m.data async for m in text.read()] == ["hello\nworld", "a", "b"]
        blob = await streams.create(name + "-b", "application/octet-stream")
        offset = await blob.append(b"\x00\x01")
        assert [m async for m in blob.read()] == [Message(str(offset), b"\x00\x01")]
        with pytest.raises(TypeError):
            await blob.append(3)


async def test_typed_errors(shared_origin: OriginProcess, name: str) -> None:
    async with Streams(shared_origin.url) as streams:
        stream = await streams.create(name, max_size=20)
        with pytest.raises(PayloadTooLarge):
            await stream.append("x" * 50)
        with pytest.raises(BadRequest):
            [m async for m in stream.read(after="garbage")]
        old = await stream.append(1)
        final = await stream.close()
        assert await stream.close() == final  # idempotent
        with pytest.raises(StreamClosed) as closed:
            await streams.stream(name).append(2)
        assert isinstance(closed.value, Conflict) and closed.value.details["next_offset"] == final
        await streams.delete(name)
        await streams.create(name)
        with pytest.raises(Gone):
            [m async for m in streams.stream(name).read(after=old)]
        with pytest.raises(NotFound):
            await streams.stream(name + "-missing").append(1)
        assert issubclass(Gone, StreamsError) and issubclass(Forbidden, Unauthorized)


async def test_unreachable_server_is_unavailable_after_retries() -> None:
    async with Streams("http://127.0.0.1:9", retry_for=0.5) as streams:
        with pytest.raises(Unavailable):
            await streams.get("x")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("client-auth")
    (root / "policy.toml").write_text('[[token]]\nname = "w"\ntoken = "w"\nwrite = ["ok/"]\n')
    with OriginProcess(root / "data", "--auth-config", str(root / "policy.toml")) as process:
        yield process.url


async def test_auth_errors(secured: str) -> None:
    async with Streams(secured) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.create("ok/x")
    async with Streams(secured, token="w") as streams:
        stream = await streams.create("ok/x")
        await stream.append(1)
        with pytest.raises(Forbidden):
            await streams.create("elsewhere/x")
        with pytest.raises(Forbidden):
            await streams.delete("ok/x")  # write is not admin
    async with Streams(secured, token="bad") as wrong:
        with pytest.raises(Unauthorized):
            await wrong.get("ok/x")


async def test_retried_appends_never_duplicate(shared_origin: OriginProcess, name: str) -> None:
    gateway = FlakyGateway(shared_origin.url, lose_every=2)
    url = await gateway.start()
    try:
        async with Streams(url) as streams:
            stream = await streams.create(name)
            offsets = [await stream.append({"i": i}) for i in range(10)]
            offsets += await stream.append_batch([{"i": i} for i in range(10, 15)])
            offsets.append(await stream.close())
        assert gateway.lost >= 6  # every append's first answer was lost
        async with Streams(shared_origin.url) as direct:
            got = [m async for m in direct.stream(name).read()]
        assert [m.data for m in got] == [{"i": i} for i in range(15)]
        # Duplicates still report where the data went (the origin remembers recent appends).
        assert [m.offset for m in got] == offsets[:15]
    finally:
        await gateway.close()


async def test_a_restarted_producer_is_not_taken_for_a_duplicate(shared_origin: OriginProcess, name: str) -> None:
    producer = f"orders-{uuid.uuid4().hex[:6]}"
    async with Streams(shared_origin.url) as streams:
        await streams.create(name)
        first_run = streams.stream(name, producer_id=producer)
        for i in range(3):
            await first_run.append(i)
        # A new process with the same producer id starts at seq 0 again: a newer epoch keeps
        # its appends from being taken for the first run's.
        second_run = streams.stream(name, producer_id=producer)
        assert second_run.epoch > first_run.epoch
        await second_run.append(3)
        # The old run is fenced (403), claims the epoch after the newest and goes on, once each.
        await first_run.append(4)
        assert first_run.epoch == second_run.epoch + 1 and first_run.seq == 1
        await second_run.append(5)
        assert [m.data async for m in streams.stream(name).read()] == [0, 1, 2, 3, 4, 5]
        # A handle given an explicit epoch uses it (here a stale one, so it claims a newer one).
        third = streams.stream(name, producer_id=producer, epoch=0)
        await third.append(6)
        assert third.epoch > second_run.epoch
        assert [m.data async for m in streams.stream(name).read()] == [0, 1, 2, 3, 4, 5, 6]
