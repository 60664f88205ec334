"""Positions between the messages of a protocol JSON stream, where the server gives no offset.

A Durable Streams server answers a JSON read with one array and one `Stream-Next-Offset`, the
offset after its last element; the elements in between have no offset of their own. The client
still gives every message a position to resume after, so that a read or tail resumed from any
message it yielded neither repeats nor skips one:

- the last message of a response gets the server's offset (`Stream-Next-Offset`) unchanged;
- any other message gets `"<offset>,<k>"`: the offset the response was read from, and how many
  elements after it this message ends (`",<k>"` when read from the start of the stream, so
  that no position begins with "-" and reads as a flag at a command line). Data after an offset
  never changes, so the first k elements after it are the same on every later read, however
  the server splits its responses.

A server offset never contains a comma (PROTOCOL.md §8), so the two kinds cannot be confused;
`split` turns either back into (server offset, elements to skip) for the next request.
Positions compare correctly only with the same base offset: only the tail's own bookkeeping
relies on them, and it never compares them. One limit: a position counted from the start of the
stream (`",<n>"`, from a read with no offset) assumes the start does not move; on a stream whose
oldest data the server drops (retention), resume from a server offset instead.
"""

from __future__ import annotations

from typing import Any, Final

from plugin_streams.errors import BadRequest
from plugin_streams.models import Message

SEPARATOR: Final = ","
#: The protocol's offset of "the start of the stream".
START: Final = "-1"


def split(position: str | None) -> tuple[str, int]:
    """(server offset, elements after it already delivered) for a position the client gave out."""
    if position is None:
        return START, 0
    offset, separator, count = position.partition(SEPARATOR)
    if not separator:
        return offset, 0
    if not count.isdigit() or int(count) < 1:
        raise BadRequest(f"not an offset or a position of this client: {position!r}", code="bad_offset")
    return offset or START, int(count)


def json_messages(start: str, skip: int, values: list[Any], end: str) -> list[Message]:
    """The messages of `values`, the elements after offset `start` up to `end`, minus `skip` of them."""
    last = len(values) - 1
    base = "" if start == START else start
    return [
        Message(end if index == last else f"{base}{SEPARATOR}{index + 1}", value)
        for index, value in enumerate(values)
        if index >= skip
    ]
