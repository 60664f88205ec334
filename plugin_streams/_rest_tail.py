"""One connection of a live tail over the REST API (`/tail?after=`, SSE or its long-poll form).

Every message carries its own offset; the server may replay from `Last-Event-ID`, so anything
at or before the tail's offset is skipped (offsets of one stream order as strings).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Final

from plugin_streams._api import RetryLater, TailSink
from plugin_streams._transport import RETRY_STATUSES
from plugin_streams.errors import error_from
from plugin_streams.models import Message, decode_data
from plugin_streams.sse import Parser

if TYPE_CHECKING:
    from plugin_streams._transport import Transport

MESSAGE_FORMAT: Final = "Stream-Message-Format"
START_OFFSET: Final = "Stream-Start-Offset"
#: The server ends long-polls after its own timeout; allow that long plus a margin per request.
LONG_POLL_READ_TIMEOUT: Final = 75.0


def is_offset(text: str | None) -> bool:
    """A real offset, as opposed to None (the start) or "now"."""
    return text is not None and text[:1].isdigit()


def _decode_event(data: str, encoding: str) -> Any:
    if encoding == "json":
        return json.loads(data)
    if encoding == "base64":
        return base64.b64decode(data)
    return data


async def check(response: Any) -> None:
    """Raise RetryLater for answers worth retrying, the client's error for any other failure."""
    if response.status in RETRY_STATUSES:
        raise RetryLater(error_from(response.status, await response.read()))
    if response.status >= 400:
        raise error_from(response.status, await response.read())


async def _deliver_new(sink: TailSink, message: Message) -> None:
    if is_offset(sink.offset) and message.offset <= str(sink.offset):
        return  # already delivered
    await sink.deliver(message)


class RestTail:
    def __init__(self, transport: Transport, path: str, mode: str, idle_timeout: float) -> None:
        self._transport = transport
        self._path = path
        self._mode = mode
        self._idle_timeout = idle_timeout

    async def attempt(self, base: str, sink: TailSink) -> None:
        if self._mode == "sse":
            await self._sse(base, sink)
        else:
            await self._long_poll(base, sink)

    async def _sse(self, base: str, sink: TailSink) -> None:
        headers = {"Accept": "text/event-stream"}
        params = {}
        if sink.offset is not None:
            params["after"] = sink.offset
            if is_offset(sink.offset):
                headers["Last-Event-ID"] = sink.offset
        async with self._transport.live_get(base + self._path, params, self._idle_timeout, headers) as response:
            await check(response)
            if not is_offset(sink.offset):
                # `now` or the start, resolved by the server: resume from there, not from "now".
                sink.offset = response.headers.get(START_OFFSET, sink.offset)
            encoding = response.headers.get(MESSAGE_FORMAT, "json")
            parser = Parser()
            async for chunk in response.content.iter_any():
                for event in parser.feed(chunk):
                    if event.event == "closed":
                        sink.closed = True
                        return
                    if event.event == "message" and event.id:
                        await _deliver_new(sink, Message(event.id, _decode_event(event.data, encoding)))

    async def _long_poll(self, base: str, sink: TailSink) -> None:
        params = {"mode": "long-poll"}
        if sink.offset is not None:
            params["after"] = sink.offset
        async with self._transport.live_get(base + self._path, params, LONG_POLL_READ_TIMEOUT) as response:
            await check(response)
            if response.status == 204:
                sink.offset = response.headers.get("Stream-Next-Offset", sink.offset)
                return
            page = json.loads(await response.read())
            encoding = page.get("encoding", "json")
            for item in page["messages"]:
                await _deliver_new(sink, Message(item["offset"], decode_data(item["data"], encoding)))
            if page["closed"]:
                sink.closed = True
            elif not page["messages"]:
                sink.offset = page["next_offset"]
