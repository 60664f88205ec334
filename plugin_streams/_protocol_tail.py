"""One connection of a live tail over the Durable Streams protocol (`live=sse` or `live=long-poll`).

SSE: every `data` event is followed by a `control` event whose `streamNextOffset` is where the
stream continues after it. Data is held until its control arrives, so a connection cut between
the two delivers nothing of that batch and the next connection asks for it again from the last
offset: resuming never repeats or skips. `streamClosed` ends the tail.

Long-poll: each answer is a batch (200) or nothing new (204); `Stream-Next-Offset` is the offset
after it, `Stream-Cursor` is echoed on the next request (it lets CDNs collapse identical polls),
and `Stream-Closed` ends the tail.

Before the first connection a HEAD learns the stream's content type (SSE data events do not carry
it), and turns `now` into the tail's offset, so every later position is a real one.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Final

from plugin_streams._api import RetryLater, TailSink
from plugin_streams._positions import json_messages, split
from plugin_streams._protocol_wire import (
    CLOSED,
    CURSOR,
    NEXT_OFFSET,
    SSE_DATA_ENCODING,
    Kind,
    content_kind,
    flag,
    messages,
    protocol_error,
    required,
)
from plugin_streams._rest_tail import LONG_POLL_READ_TIMEOUT
from plugin_streams._transport import RETRY_STATUSES
from plugin_streams.errors import StreamsError
from plugin_streams.models import Message
from plugin_streams.sse import Parser

if TYPE_CHECKING:
    from plugin_streams._transport import Transport

NOW: Final = "now"


def sse_batch(kind: Kind, base64_data: bool, start: str, skip: int, events: list[str], end: str) -> list[Message]:
    """The messages of the data events that one control event closed."""
    if base64_data:
        # Servers may split base64 across data: lines; the line breaks are not part of it.
        payload = b"".join(base64.b64decode(e.replace("\n", "").replace("\r", "")) for e in events)
        return messages("bytes", start, skip, payload, end)
    if kind == "json":
        values: list[Any] = []
        for event in events:
            batch = json.loads(event)
            values.extend(batch if isinstance(batch, list) else [batch])
        return json_messages(start, skip, values, end)
    return messages(kind, start, skip, "".join(events).encode(), end)


def _advance(sink: TailSink, offset: str, skip: int, end: str) -> tuple[str, int]:
    """Move the tail to `end`, the offset after what was just delivered; (offset, skip) from there.

    An answer that ends where it started leaves a mid-batch position as it is (nothing moved).
    """
    if end == offset and skip:
        return offset, skip
    sink.offset = end
    return end, 0


class ProtocolTail:
    def __init__(self, transport: Transport, path: str, name: str, mode: str, idle_timeout: float) -> None:
        self._transport = transport
        self._path = path
        self._name = name
        self._mode = mode
        self._idle_timeout = idle_timeout
        self._kind: Kind | None = None
        self._cursor: str | None = None

    async def attempt(self, base: str, sink: TailSink) -> None:
        if self._kind is None or sink.offset == NOW:
            await self._describe(base, sink)
        if self._mode == "sse":
            await self._sse(base, sink)
        else:
            await self._long_poll(base, sink)

    async def _check(self, response: Any) -> None:
        if response.status in RETRY_STATUSES or response.status >= 400:
            error = protocol_error(response.status, response.headers, await response.read(), self._name)
            if response.status in RETRY_STATUSES:
                raise RetryLater(error)
            raise error

    async def _describe(self, base: str, sink: TailSink) -> None:
        async with self._transport.session().head(
            base + self._path, headers=self._transport.headers(), timeout=self._transport.timeout()
        ) as response:
            await self._check(response)
            self._kind = content_kind(response.headers.get("Content-Type", ""))
            if sink.offset == NOW:
                sink.offset = required(response.headers, NEXT_OFFSET)

    async def _sse(self, base: str, sink: TailSink) -> None:
        offset, skip = split(sink.offset)
        assert self._kind is not None
        async with self._transport.live_get(
            base + self._path, {"offset": offset, "live": "sse"}, self._idle_timeout, {"Accept": "text/event-stream"}
        ) as response:
            await self._check(response)
            base64_data = response.headers.get(SSE_DATA_ENCODING, "").lower() == "base64"
            parser = Parser()
            pending: list[str] = []
            async for chunk in response.content.iter_any():
                for event in parser.feed(chunk):
                    if event.event == "data":
                        pending.append(event.data)
                    elif event.event == "control":
                        control = json.loads(event.data)
                        end = control.get("streamNextOffset")
                        if not isinstance(end, str) or not end:
                            raise StreamsError("an SSE control event without streamNextOffset")
                        for message in sse_batch(self._kind, base64_data, offset, skip, pending, end):
                            await sink.deliver(message)
                        pending = []
                        offset, skip = _advance(sink, offset, skip, end)
                        if control.get("streamClosed") is True:
                            sink.closed = True
                            return

    async def _long_poll(self, base: str, sink: TailSink) -> None:
        offset, skip = split(sink.offset)
        assert self._kind is not None
        params = {"offset": offset, "live": "long-poll"}
        if self._cursor is not None:
            params["cursor"] = self._cursor
        async with self._transport.live_get(base + self._path, params, LONG_POLL_READ_TIMEOUT) as response:
            await self._check(response)
            self._cursor = response.headers.get(CURSOR, self._cursor)
            end = required(response.headers, NEXT_OFFSET)
            body = await response.read() if response.status == 200 else b""
            for message in messages(self._kind, offset, skip, body, end):
                await sink.deliver(message)
            _advance(sink, offset, skip, end)
            if flag(response.headers, CLOSED):
                sink.closed = True
