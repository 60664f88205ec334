"""The one incremental Server-Sent Events parser (WHATWG rules), for the client and the servers.

It lives in the client package because the client installs with aiohttp only and may import no
server code; the servers take it from here through `plugin_streams.shared.sse`, next to the
encoder, so every SSE reader in the product (the client's tail, the edge's upstream follower,
the tests) parses the same way.

Feed it bytes as they arrive; it returns complete events. An event is dispatched only at its
blank line, so a connection cut mid-event yields nothing partial, and an event without a data
line is dropped. Lines may end in CRLF, CR or LF, and one space after the colon is dropped.
Bytes are decoded as WHATWG's "UTF-8 decode" does: a leading byte order mark is skipped and
invalid UTF-8 becomes U+FFFD instead of failing the stream. An `id` containing NUL is ignored.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Final

_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    data: str
    id: str | None = None


class Parser:
    def __init__(self) -> None:
        # Incremental, because a chunk may end inside a character; "utf-8-sig" skips one leading BOM.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += self._decoder.decode(chunk)
        events: list[Event] = []
        while (match := _LINE_BREAK.search(self._buffer)) is not None:
            if match.group() == "\r" and match.end() == len(self._buffer):
                break  # maybe the first half of a CRLF still in flight
            line = self._buffer[: match.start()]
            self._buffer = self._buffer[match.end() :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if line == "":
            # An event with no data line is discarded, whatever else it named; the id persists.
            event = Event(self._event or "message", "\n".join(self._data), self._id) if self._data else None
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
