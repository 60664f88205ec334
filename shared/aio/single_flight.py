"""Single-flight: concurrent callers asking for the same key share one piece of work.

The key is registered before the first await, the work runs in its own shielded task (so one
caller giving up does not cancel it for the others), every waiter gets the same result or the
same exception, and the key is dropped in `finally` (as aiohttp's connector does for DNS).
When the last waiter of a flight leaves before it is done, its work is cancelled: nobody needs
the answer, and an upstream long-poll nobody waits for should not hold one of the origin's slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from plugin_streams.shared.aio.tasks import spawn

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self, name: str) -> None:
        self._name = name
        self._inflight: dict[K, asyncio.Future[V]] = {}
        # Waiters of each flight (callers of run(), and of join() until their leave()), and its
        # work: when the last of them leaves (its client went away) the work is cancelled, so an
        # upstream long-poll nobody waits for no longer holds one of the origin's live slots.
        self._callers: dict[asyncio.Future[V], int] = {}
        self._tasks: dict[asyncio.Future[V], asyncio.Task[None]] = {}
        self.started = 0  # upstream calls made
        self.joined = 0  # callers that shared someone else's call

    def waiting(self, key: K) -> bool:
        return key in self._inflight

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        future = self.join(key, work)
        try:
            return await asyncio.shield(future)
        finally:
            self.leave(key, future)

    def settle_all(self, value: V) -> None:
        """Answer every current waiter with `value` now (shutdown); the work still finishes."""
        for future in self._inflight.values():
            if not future.done():
                future.set_result(value)

    def join(self, key: K, work: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        """The shared future for `key` (never cancel it), starting the work if nobody has; one
        more waiter of it until `leave`, which the caller owes unless the future is done."""
        return self._waited(self._flight(key, work))

    def join_pending(self, key: K) -> asyncio.Future[V] | None:
        """`join` the flight in progress for `key`, if any (without making its work)."""
        future = self._inflight.get(key)
        if future is not None:
            self.joined += 1
            self._waited(future)
        return future

    def leave(self, key: K, future: asyncio.Future[V]) -> None:
        """A waiter that joined `future` no longer needs its answer; the last one cancels the work."""
        callers = self._callers
        if future not in callers:
            return  # done (or being cancelled)
        callers[future] -= 1
        if callers[future] == 0 and not future.done():
            # Nobody needs the answer. Callers from now on start anew.
            if self._inflight.get(key) is future:
                del self._inflight[key]
            del callers[future]
            self._tasks[future].cancel()

    def _waited(self, future: asyncio.Future[V]) -> asyncio.Future[V]:
        if future in self._callers:
            self._callers[future] += 1
        return future

    def _flight(self, key: K, work: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            self.started += 1
            self._callers[future] = 0
            self._tasks[future] = spawn(self._work(key, work, future), name=f"{self._name}-flight")
        else:
            self.joined += 1
        return future

    async def _work(self, key: K, work: Callable[[], Awaitable[V]], future: asyncio.Future[V]) -> None:
        try:
            result = await work()
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: waiters may all be gone
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not future.done():
                future.set_result(result)
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            self._callers.pop(future, None)
            self._tasks.pop(future, None)
