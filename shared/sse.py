"""Server-Sent Events framing (PROTOCOL.md §5.8): an encoder and an incremental parser.

Each `data` event is immediately followed by its `control` event, built as one bytes object so
it goes out in one write. Payload lines are split on CRLF, CR and LF, so no payload can inject
an event. `data:` is written without a space; a line that itself starts with a space gets one
extra space, because WHATWG parsers strip exactly one space after the colon.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
from dataclasses import dataclass
from typing import Final

from plugin_streams.shared.headers import (
    SSE_CLOSED,
    SSE_CURSOR,
    SSE_EVENT_CONTROL,
    SSE_EVENT_DATA,
    SSE_NEXT_OFFSET,
    SSE_UP_TO_DATE,
)

_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
KEEP_ALIVE: Final = b":\n\n"


def _data_lines(text: str) -> str:
    out = []
    for line in _LINE_BREAK.split(text):
        out.append("data: " + line if line.startswith(" ") else "data:" + line)
    return "\n".join(out) + "\n"


def control_payload(next_offset: str, *, cursor: int | None, up_to_date: bool, closed: bool) -> dict[str, object]:
    control: dict[str, object] = {SSE_NEXT_OFFSET: next_offset}
    if closed:
        control[SSE_CLOSED] = True
        control[SSE_UP_TO_DATE] = True
    else:
        if cursor is not None:
            control[SSE_CURSOR] = str(cursor)
        if up_to_date:
            control[SSE_UP_TO_DATE] = True
    return control


def encode_control(control: dict[str, object]) -> bytes:
    body = json.dumps(control, separators=(",", ":"))
    return f"event: {SSE_EVENT_CONTROL}\ndata:{body}\n\n".encode()


def encode_data(payload: bytes, *, base64_mode: bool) -> bytes:
    if base64_mode:
        return encode_data_text(base64.b64encode(payload).decode("ascii"))
    return encode_data_text(payload.decode("utf-8", errors="replace"))


def encode_data_text(text: str) -> bytes:
    """A data event carrying `text` as it travels (UTF-8 text, or base64 for binary streams)."""
    return f"event: {SSE_EVENT_DATA}\n{_data_lines(text)}\n".encode()


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    data: str
    id: str | None = None


class Parser:
    """Incremental SSE parser (WHATWG rules): feed bytes, get complete events."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()  # chunks may split a character
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += self._decoder.decode(chunk)
        events: list[Event] = []
        while True:
            match = _LINE_BREAK.search(self._buffer)
            if match is None:
                return events
            # A lone CR at the very end may be the first half of a CRLF still in flight.
            if match.group() == "\r" and match.end() == len(self._buffer):
                return events
            line = self._buffer[: match.start()]
            self._buffer = self._buffer[match.end() :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if line == "":
            # WHATWG: an event with no data line is discarded, whatever else it named.
            event = Event(self._event or "message", "\n".join(self._data), self._id) if self._has_data else None
            self._event, self._data, self._has_data = "", [], False
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id":
            self._id = value
        return None
