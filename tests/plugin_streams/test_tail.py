"""The tail's reconnect loop (plugin_streams.tail) over a scripted API: on_retry before each wait,
give_up_after counted over failures in a row only, and errors retrying cannot fix end it at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from plugin_streams import NotFound, Unavailable
from plugin_streams._api import RetryLater, TailSink
from plugin_streams.errors import error_from
from plugin_streams.tail import TailHandle

Step = Callable[[TailSink], None]


async def finished(handle: TailHandle, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await handle.done


class ScriptedApi:
    """An Api whose tail connections each run the next step of a script (and fail after it)."""

    name = "protocol"

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.transport = self
        self.base = "http://scripted"
        self.moved = 0

    def failed(self, base: str) -> None:
        self.moved += 1

    def tail_session(self, name: str, mode: str, idle_timeout: float) -> ScriptedApi:
        return self

    async def attempt(self, base: str, sink: TailSink) -> None:
        self.steps.pop(0)(sink)


def refused(sink: TailSink) -> None:
    raise aiohttp.ClientConnectionError("connection refused")


def busy(sink: TailSink) -> None:
    raise RetryLater(error_from(503, b"busy"))


def close(sink: TailSink) -> None:
    sink.closed = True


def start(api: ScriptedApi, **hooks: object) -> TailHandle:
    return TailHandle(api, "s", None, lambda m: None, mode="long-poll", idle_timeout=1.0, **hooks)  # type: ignore[arg-type]


async def test_on_retry_hears_each_failure_and_its_delay() -> None:
    calls: list[tuple[BaseException, float]] = []
    api = ScriptedApi([refused, busy, close])
    handle = start(api, on_retry=lambda error, delay: calls.append((error, delay)))
    await finished(handle, 10)
    assert [type(error) for error, _ in calls] == [aiohttp.ClientConnectionError, type(error_from(503, b""))]
    assert all(0 < delay <= 3.0 for _, delay in calls)
    assert api.moved == 2 and handle.closed


async def test_give_up_after_ends_the_tail_with_the_last_error() -> None:
    api = ScriptedApi([refused] * 100)
    handle = start(api, give_up_after=0.5)
    with pytest.raises(Unavailable, match=r"http://scripted.*connection refused"):
        await finished(handle, 10)
    assert 1 < api.moved < 100


async def test_a_successful_connection_starts_the_failure_clock_again() -> None:
    def slow_ok(sink: TailSink) -> None:
        pass  # a long-poll that came back with nothing new

    script: list[Step] = []
    for _ in range(8):
        script += [refused, refused, slow_ok]
    api = ScriptedApi([*script, close])
    retries: list[float] = []
    # Each run of two failures waits 0.15-0.3 s: never 1 s in a row, but more than 1 s in all.
    handle = start(api, give_up_after=1.0, on_retry=lambda error, delay: retries.append(delay))
    await finished(handle, 20)
    assert handle.closed and len(retries) == 16


async def test_errors_retrying_cannot_fix_end_the_tail_without_retrying() -> None:
    def missing(sink: TailSink) -> None:
        raise NotFound("no such stream", status=404)

    calls: list[float] = []
    handle = start(ScriptedApi([missing]), on_retry=lambda error, delay: calls.append(delay))
    with pytest.raises(NotFound):
        await finished(handle, 10)
    assert calls == []
