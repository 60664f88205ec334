"""An SSE response read event by event with a deadline, through the server's own parser (shared.sse).

Every test that reads `live=sse` uses this one reader, so that all of them parse the stream the
same (spec) way: a single leading space after `data:` dropped, CRLF and CR line ends, comments
skipped but kept in `raw`.
"""

from __future__ import annotations

import asyncio

import aiohttp

from plugin_streams.shared import sse


class SSEReader:
    """Events of one SSE response, read with a deadline; the raw bytes are kept (comments included)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.parser = sse.Parser()
        self.pending: list[sse.Event] = []
        self.raw = b""
        self.ended = False

    async def next(self, timeout: float = 10.0) -> sse.Event | None:
        """The next event, or None when the response ended; TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while not self.pending:
                chunk = await self.response.content.readany()
                if not chunk:
                    self.ended = True
                    return None
                self.raw += chunk
                self.pending += self.parser.feed(chunk)
        return self.pending.pop(0)

    async def take(self, count: int, timeout: float = 10.0) -> list[sse.Event]:
        """The next `count` events; AssertionError if the response ends before."""
        events = []
        while len(events) < count:
            event = await self.next(timeout)
            assert event is not None, f"stream ended after {events}"
            events.append(event)
        return events

    async def first(self, kind: str, timeout: float = 10.0) -> str | None:
        """The payload of the next `kind` event (others skipped); None if none comes within `timeout` s."""
        try:
            async with asyncio.timeout(timeout):
                while (event := await self.next(timeout)) is not None:
                    if event.event == kind:
                        return event.data
        except TimeoutError:
            pass
        return None
