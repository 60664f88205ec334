"""The synchronous client: the same API, blocking, on its own event-loop thread (REST against the
shared origin; protocol mode against the origin, an edge and the Node reference server)."""

from __future__ import annotations

import threading
import time

import pytest

from plugin_streams import Message, NotFound, NotSupported, StreamClosed, SyncStreams, Unavailable
from tests.support.processes import OriginProcess


def test_sync_client_round_trip(shared_origin: OriginProcess, name: str) -> None:
    with SyncStreams(shared_origin.url) as streams:
        stream = streams.create(name)
        offsets = [stream.append({"i": i}) for i in range(3)]
        offsets += stream.append_batch([{"i": i} for i in range(3, 60)])
        got = list(stream.read())
        assert [m.data for m in got] == [{"i": i} for i in range(60)]
        assert [m.offset for m in got] == offsets
        assert [m.data for m in stream.read(after=offsets[57], limit=1)] == [{"i": 58}, {"i": 59}]
        reader = stream.read()
        assert next(reader).data == {"i": 0}
        reader.close()  # abandoning an iterator early is fine
        assert streams.get(name).next_offset == offsets[-1]
        assert name in [info.name for info in streams.list(name)]
        with pytest.raises(NotFound):
            streams.get(name + "-missing")


def test_sync_tail_with_a_callback_that_uses_the_client(shared_origin: OriginProcess, name: str) -> None:
    with SyncStreams(shared_origin.url) as streams:
        source = streams.create(name)
        echo = streams.create(name + "-echo")
        seen: list[Message] = []
        threads: set[str] = set()

        def callback(message: Message) -> None:
            seen.append(message)
            threads.add(threading.current_thread().name)
            echo.append(message.data)  # the sync client may be used from the callback

        handle = source.tail(callback=callback)
        for i in range(5):
            source.append(i)
        source.close()
        handle.wait(timeout=15)
        assert handle.done and handle.closed
        assert [m.data for m in seen] == list(range(5))
        assert handle.offset == seen[-1].offset
        assert [m.data for m in echo.read()] == list(range(5))
        assert "plugin-streams-client" not in threads
        with pytest.raises(StreamClosed):
            source.append(9)


def test_sync_tail_stop(shared_origin: OriginProcess, name: str) -> None:
    with SyncStreams(shared_origin.url) as streams:
        stream = streams.create(name)
        seen: list[object] = []
        handle = stream.tail("now", lambda m: seen.append(m.data))
        time.sleep(0.3)
        stream.append(1)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        handle.stop()
        handle.wait(timeout=5)
        assert seen == [1] and not handle.closed


def test_closing_the_client_ends_running_tails(shared_origin: OriginProcess, name: str) -> None:
    streams = SyncStreams(shared_origin.url)
    stream = streams.create(name)
    handle = stream.tail(callback=lambda m: None)
    time.sleep(0.2)
    streams.close()
    assert handle.done
    streams.close()  # twice is fine


def test_sync_client_in_protocol_mode(protocol_url: str, name: str) -> None:
    with SyncStreams(protocol_url) as streams:
        assert streams.api_name == "protocol"
        stream = streams.create(name)
        stream.append({"i": 0})
        stream.append_batch([{"i": i} for i in range(1, 5)])
        got = list(stream.read())
        assert [m.data for m in got] == [{"i": i} for i in range(5)]
        assert [m.data for m in stream.read(after=got[1].offset)] == [{"i": i} for i in range(2, 5)]
        seen: list[Message] = []
        handle = stream.tail(got[2].offset, seen.append, mode="long-poll")
        stream.append({"i": 5})
        final = stream.close()
        handle.wait(timeout=15)
        assert [m.data for m in seen] == [{"i": 3}, {"i": 4}, {"i": 5}] and handle.offset == final
        assert streams.get(name).closed and streams.exists(name)
        with pytest.raises(NotSupported):
            list(streams.list())
        streams.delete(name)
        assert not streams.exists(name)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://127.0.0.1:9/v1/stream"])
def test_sync_tail_reports_retries_and_gives_up(url: str) -> None:
    retries: list[tuple[BaseException, float]] = []
    with SyncStreams(url) as streams:
        handle = streams.stream("s").tail(
            callback=lambda m: None, on_retry=lambda error, delay: retries.append((error, delay)), give_up_after=0.5
        )
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"127\.0\.0\.1:9"):
            handle.wait(timeout=10)
    assert time.monotonic() - started < 3 and retries and all(delay > 0 for _, delay in retries)
