"""A live tail: SSE (or long-poll) with reconnects, delivering each message exactly once.

The handle remembers the offset of the last message it delivered and resumes from it on every
reconnect (`Last-Event-ID` and `after`), and skips anything at or before it, so neither a
dropped connection, an origin restart nor a move to another edge repeats or loses a message.
Reconnects after failures wait a jittered backoff and move to the next base URL; a connection
the server ended cleanly (its SSE max age) is resumed at once. Closure of the stream ends the
tail; so do errors that retrying cannot fix (not found, gone, unauthorized) and callback errors.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final

from plugin_streams._backoff import Backoff
from plugin_streams._transport import RETRY_STATUSES, RETRYABLE_ERRORS
from plugin_streams.errors import error_from
from plugin_streams.models import Message, decode_data
from plugin_streams.sse import Parser

if TYPE_CHECKING:
    from plugin_streams._transport import Transport

Callback = Callable[[Message], Awaitable[None] | None]
MESSAGE_FORMAT: Final = "Stream-Message-Format"
#: A connection that lasted this long was healthy, whatever ended it: retry delays start over.
HEALTHY_CONNECTION: Final = 5.0
#: The server ends long-polls after its own timeout; allow that long plus a margin per request.
LONG_POLL_READ_TIMEOUT: Final = 75.0


class _Retry(Exception):
    """This attempt failed in a way worth retrying elsewhere or later."""


class _Stopped(Exception):
    """stop() was called while a message was being delivered."""


#: Tails running on any loop: the loop itself keeps only weak references to tasks.
_RUNNING: set[asyncio.Task[None]] = set()
START_OFFSET: Final = "Stream-Start-Offset"


def _is_offset(text: str | None) -> bool:
    return text is not None and text[:1].isdigit()


def _decode_event(data: str, encoding: str) -> Any:
    if encoding == "json":
        return json.loads(data)
    if encoding == "base64":
        return base64.b64decode(data)
    return data


class TailHandle:
    def __init__(
        self, transport: Transport, path: str, after: str | None, callback: Callback, *, mode: str, idle_timeout: float
    ) -> None:
        if mode not in ("sse", "long-poll"):
            raise ValueError("mode must be 'sse' or 'long-poll'")
        self.offset: str | None = after  # of the last message delivered (or where the tail started)
        self.closed = False  # True once the stream was seen closed
        self.delivered = 0  # messages handed to the callback
        self._transport = transport
        self._path = path + "/tail"
        self._callback = callback
        self._mode = mode
        self._idle_timeout = idle_timeout
        self._stopping = False
        self._in_callback = False
        self._started = False
        # The handle owns its task (a strong reference for as long as the tail runs).
        self.done: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run(), name=f"tail {path}")
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

    async def _deliver(self, message: Message) -> None:
        if _is_offset(self.offset) and message.offset <= str(self.offset):
            return  # already delivered (offsets of one stream order as strings)
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
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping and not self.closed:
                base = self._transport.base
                started, delivered = loop.time(), self.delivered
                try:
                    if self._mode == "sse":
                        await self._sse(base)
                    else:
                        await self._long_poll(base)
                except (_Retry, *RETRYABLE_ERRORS):
                    self._transport.failed(base)
                    await asyncio.sleep(backoff.next())
                    continue
                lasted = loop.time() - started
                if self._mode == "long-poll" or self.delivered > delivered or lasted >= HEALTHY_CONNECTION:
                    backoff.reset()
                elif not self.closed:
                    # An SSE response that ended at once with nothing delivered (a server shutting
                    # down, say): do not reconnect in a tight loop.
                    await asyncio.sleep(backoff.next())
        except _Stopped:
            pass
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    async def _check(self, response: Any) -> None:
        if response.status in RETRY_STATUSES:
            raise _Retry(response.status)
        if response.status >= 400:
            raise error_from(response.status, await response.read())

    async def _sse(self, base: str) -> None:
        headers = {"Accept": "text/event-stream"}
        params = {}
        if self.offset is not None:
            params["after"] = self.offset
            if _is_offset(self.offset):
                headers["Last-Event-ID"] = self.offset
        async with self._transport.session().get(
            base + self._path,
            params=params,
            headers=self._transport.headers(headers),
            timeout=self._transport.timeout(self._idle_timeout),
        ) as response:
            await self._check(response)
            if not _is_offset(self.offset):
                # `now` or the start, resolved by the server: resume from there, not from "now".
                self.offset = response.headers.get(START_OFFSET, self.offset)
            encoding = response.headers.get(MESSAGE_FORMAT, "json")
            parser = Parser()
            async for chunk in response.content.iter_any():
                for event in parser.feed(chunk):
                    if event.event == "closed":
                        self.closed = True
                        return
                    if event.event == "message" and event.id:
                        await self._deliver(Message(event.id, _decode_event(event.data, encoding)))

    async def _long_poll(self, base: str) -> None:
        params = {"mode": "long-poll"}
        if self.offset is not None:
            params["after"] = self.offset
        async with self._transport.session().get(
            base + self._path,
            params=params,
            headers=self._transport.headers(),
            timeout=self._transport.timeout(LONG_POLL_READ_TIMEOUT),
        ) as response:
            await self._check(response)
            if response.status == 204:
                self.offset = response.headers.get("Stream-Next-Offset", self.offset)
                return
            page = json.loads(await response.read())
            encoding = page.get("encoding", "json")
            for item in page["messages"]:
                await self._deliver(Message(item["offset"], decode_data(item["data"], encoding)))
            if page["closed"]:
                self.closed = True
            elif not page["messages"]:
                self.offset = page["next_offset"]
