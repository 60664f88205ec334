"""Single-flight (shared.aio.single_flight): one piece of work per key, shared by every caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.aio.tasks import spawn


class Gate:
    """Work that counts its calls and returns `value` once released."""

    def __init__(self, value: str = "answer") -> None:
        self.value = value
        self.calls = 0
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> str:
        self.calls += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.value


def call(flights: SingleFlight[str, str], key: str, work: Callable[[], Awaitable[str]]) -> asyncio.Task[str]:
    """A caller of `flights.run(key, work)` in its own task (so it can be cancelled)."""
    task: asyncio.Task[str] = spawn(flights.run(key, work), name="caller")
    return task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_callers_of_one_key_share_one_call() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    work = Gate()
    callers = [call(flights, "k", work) for _ in range(3)]
    await settle()
    assert flights.waiting("k")
    work.release.set()
    assert await asyncio.gather(*callers) == ["answer"] * 3
    assert (work.calls, flights.started, flights.joined) == (1, 1, 2)
    assert not flights.waiting("k")


async def test_different_keys_fly_separately() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    a, b = Gate("a"), Gate("b")
    ta = call(flights, "a", a)
    tb = call(flights, "b", b)
    await settle()
    a.release.set()
    b.release.set()
    assert (await ta, await tb) == ("a", "b")
    assert flights.started == 2


async def test_a_key_is_flown_again_once_its_flight_is_done() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    work = Gate()
    work.release.set()
    assert await flights.run("k", work) == "answer"
    assert await flights.run("k", work) == "answer"
    assert work.calls == 2


async def test_every_waiter_gets_the_same_exception() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    release = asyncio.Event()

    async def fails() -> str:
        await release.wait()
        raise ValueError("upstream down")

    callers = [call(flights, "k", fails) for _ in range(2)]
    await settle()
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [ValueError, ValueError]
    assert results[0] is results[1]
    assert not flights.waiting("k")


async def test_one_caller_giving_up_does_not_cancel_the_work_for_the_others() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    work = Gate()
    leaving = call(flights, "k", work)
    staying = call(flights, "k", work)
    await settle()
    leaving.cancel()
    await settle()
    assert not work.cancelled
    work.release.set()
    assert await staying == "answer"
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_the_last_caller_leaving_cancels_the_work_and_frees_the_key() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    work = Gate()
    callers = [call(flights, "k", work) for _ in range(2)]
    await settle()
    for caller in callers:
        caller.cancel()
    await settle()
    assert work.cancelled
    assert not flights.waiting("k")
    fresh = Gate("fresh")
    fresh.release.set()
    assert await flights.run("k", fresh) == "fresh"


async def test_join_pending_joins_only_a_flight_in_progress() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    assert flights.join_pending("k") is None
    work = Gate()
    first = flights.join("k", work)
    joined = flights.join_pending("k")
    assert joined is first
    assert flights.joined == 1
    flights.leave("k", first)
    await settle()
    assert not work.cancelled, "one waiter (the joiner) still needs the answer"
    work.release.set()
    assert await joined == "answer"
    flights.leave("k", joined)  # done: leaving is a no-op


async def test_settle_all_answers_every_waiter_now_and_the_work_still_finishes() -> None:
    flights: SingleFlight[str, str] = SingleFlight("test")
    work = Gate()
    caller = call(flights, "k", work)
    await settle()
    flights.settle_all("shutting down")
    assert await caller == "shutting down"
    assert not work.cancelled
    work.release.set()
    await settle()
    assert not flights.waiting("k")
