"""A live tail: SSE (or long-poll) with reconnects, delivering each message exactly once.

The handle remembers the offset after the last message it delivered and resumes from it on
every reconnect, so neither a dropped connection, an origin restart nor a move to another edge
repeats or loses a message. The connections themselves are the API's (`_rest_tail`,
`_protocol_tail`); this module owns the loop around them. Reconnects after failures wait a
jittered backoff and move to the next base URL; a connection the server ended cleanly (its SSE
max age) is resumed at once. Closure of the stream ends the tail; so do errors that retrying
cannot fix (not found, gone, unauthorized) and callback errors.

Reconnects can be watched and bounded: `on_retry(error, delay)` is called before each wait
after a failure, and `give_up_after` (seconds) ends the tail with the last error (Unavailable
for a network failure) once failures have lasted that long without a successful connection in
between. By default the tail retries forever, silently.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final

from plugin_streams._api import RetryLater
from plugin_streams._backoff import Backoff
from plugin_streams._transport import RETRYABLE_ERRORS
from plugin_streams.errors import StreamsError, Unavailable
from plugin_streams.models import Message

if TYPE_CHECKING:
    from plugin_streams._api import Api

Callback = Callable[[Message], Awaitable[None] | None]
RetryHook = Callable[[BaseException, float], None]
MODES: Final = ("sse", "long-poll")
#: A connection that lasted this long was healthy, whatever ended it: retry delays start over.
HEALTHY_CONNECTION: Final = 5.0


class _Stopped(Exception):
    """stop() was called while a message was being delivered."""


#: Tails running on any loop: the loop itself keeps only weak references to tasks.
_RUNNING: set[asyncio.Task[None]] = set()


def _final_error(error: BaseException, base: str) -> BaseException:
    if isinstance(error, StreamsError):
        return error
    return Unavailable(f"{base}: {type(error).__name__}: {error}".rstrip(": "))


class TailHandle:
    def __init__(
        self,
        api: Api,
        name: str,
        after: str | None,
        callback: Callback,
        *,
        mode: str,
        idle_timeout: float,
        on_retry: RetryHook | None = None,
        give_up_after: float | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError("mode must be 'sse' or 'long-poll'")
        self.offset: str | None = after  # after the last message delivered (or where the tail started)
        self.closed = False  # True once the stream was seen closed
        self.delivered = 0  # messages handed to the callback
        self._transport = api.transport
        self._session = api.tail_session(name, mode, idle_timeout)
        self._callback = callback
        self._mode = mode
        self._on_retry = on_retry
        self._give_up_after = give_up_after
        self._stopping = False
        self._in_callback = False
        self._started = False
        # The handle owns its task (a strong reference for as long as the tail runs).
        self.done: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run(), name=f"tail {name}")
        _RUNNING.add(self.done)
        self.done.add_done_callback(_RUNNING.discard)

    def stop(self) -> None:
        """Stop after the message being delivered (if any); `done` then completes normally."""
        self._stopping = True
        # Not yet started: it will see the flag (a cancel now would escape its handler).
        if self._started and not self._in_callback and not self.done.done():
            self.done.cancel()

    def __await__(self) -> Generator[Any, None, None]:
        return self.done.__await__()

    async def deliver(self, message: Message) -> None:
        """Hand one message to the callback (the API's tail connection calls this, in order)."""
        self._in_callback = True
        try:
            result = self._callback(message)
            if inspect.isawaitable(result):
                await result
        finally:
            self._in_callback = False
        self.offset = message.offset
        self.delivered += 1
        if self._stopping:
            raise _Stopped

    async def _run(self) -> None:
        self._started = True
        try:
            await self._follow()
        except _Stopped:
            pass
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    async def _follow(self) -> None:
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while not self._stopping and not self.closed:
            base = self._transport.base
            started, delivered = loop.time(), self.delivered
            try:
                await self._session.attempt(base, self)
            except (RetryLater, *RETRYABLE_ERRORS) as exc:
                self._transport.failed(base)
                failing_since = started if failing_since is None else failing_since
                error = exc.error if isinstance(exc, RetryLater) else exc
                await self._wait_to_retry(error, base, backoff.next(), loop.time() - failing_since)
                continue
            failing_since = None
            lasted = loop.time() - started
            if self._mode == "long-poll" or self.delivered > delivered or lasted >= HEALTHY_CONNECTION:
                backoff.reset()
            elif not self.closed:
                # An SSE response that ended at once with nothing delivered (a server shutting
                # down, say): do not reconnect in a tight loop.
                await asyncio.sleep(backoff.next())

    async def _wait_to_retry(self, error: BaseException, base: str, delay: float, failing_for: float) -> None:
        if self._give_up_after is not None and failing_for + delay > self._give_up_after:
            final = _final_error(error, base)
            if final is error:
                raise final
            raise final from error
        if self._on_retry is not None:
            self._on_retry(error, delay)
        await asyncio.sleep(delay)
