"""Server-Sent Events framing (PROTOCOL.md §5.8): the one encoder, and the one parser.

The parser (`Parser`, `Event`) is the client's, re-exported here: the client may import no
server code, so the one copy lives in `plugin_streams.sse` and the servers read it from there.

Every SSE response of the product is framed here: the protocol's data and control events, the
REST tail's message and closed events, and the keep-alive comment. Each `data` event is
immediately followed by its `control` event, built as one bytes object so it goes out in one
write. Payload lines are split on CRLF, CR and LF, so no payload can inject
an event. `data:` is written without a space; a line that itself starts with a space gets one
extra space, because WHATWG parsers strip exactly one space after the colon.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Final

from plugin_streams.shared.headers import (
    SSE_CLOSED,
    SSE_CURSOR,
    SSE_EVENT_CONTROL,
    SSE_EVENT_DATA,
    SSE_NEXT_OFFSET,
    SSE_UP_TO_DATE,
)
from plugin_streams.sse import Event, Parser

_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
KEEP_ALIVE: Final = b":\n\n"

__all__ = [
    "KEEP_ALIVE",
    "Event",
    "Parser",
    "control_payload",
    "encode_control",
    "encode_data",
    "encode_data_text",
    "format_event",
]


def format_event(data: str, *, event: str | None = None, event_id: str | None = None) -> str:
    """One event: its `event` and `id` lines (when given), `data` split into data lines, the blank line."""
    head = ""
    if event is not None:
        head += f"event: {event}\n"
    if event_id is not None:
        head += f"id:{event_id}\n"
    lines = "".join(("data: " if line.startswith(" ") else "data:") + line + "\n" for line in _LINE_BREAK.split(data))
    return f"{head}{lines}\n"


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
    return format_event(json.dumps(control, separators=(",", ":")), event=SSE_EVENT_CONTROL).encode()


def encode_data(payload: bytes, *, base64_mode: bool) -> bytes:
    if base64_mode:
        return encode_data_text(base64.b64encode(payload).decode("ascii"))
    return encode_data_text(payload.decode("utf-8", errors="replace"))


def encode_data_text(text: str) -> bytes:
    """A data event carrying `text` as it travels (UTF-8 text, or base64 for binary streams)."""
    return format_event(text, event=SSE_EVENT_DATA).encode()
