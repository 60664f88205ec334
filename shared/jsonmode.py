"""JSON mode (PROTOCOL.md §9.1): validation, one-level flattening, and read framing.

A JSON stream stores each message as compact JSON followed by a comma, so a read of any range
of whole messages is `[` + the stored bytes without their final comma + `]`: no parsing on
the read path. Messages are re-serialised once on append; values are preserved exactly
(Python's json round-trips integers of any size and floats by shortest repr).

A small body is validated and re-serialised by one decode and one encode of the whole value
(`stored_messages`), with encoder and decoder made once: a JSON array's compact encoding is
its elements' compact encodings joined by commas, so the stored form is that encoding less its
brackets, plus a comma. json.dumps and json.loads with options build a new encoder or decoder
per call, which cost as much as the work itself on a 100-byte message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import islice
from typing import Any, Final

from plugin_streams.shared.errors import BadRequest

_SEPARATOR: Final = b","
EMPTY_ARRAY: Final = b"[]"
#: JSON work (a parse, a scan for message boundaries) on more bytes than this runs off the event
#: loop: below it, it costs at most about a millisecond.
INLINE_BYTES: Final = 32 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_ENCODE: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_ENCODE_ASCII: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def _dump(value: Any) -> bytes:
    try:
        return _ENCODE(value).encode()
    except UnicodeEncodeError:
        # Lone surrogates (legal as JSON escapes) cannot be UTF-8 encoded; keep them escaped.
        return _ENCODE_ASCII(value).encode()


def compact(value: Any) -> bytes:
    """A JSON value as a JSON stream stores it: parsing stored text and compacting it again gives
    back exactly the stored bytes (an edge re-frames messages it parsed from a page)."""
    return _dump(value)


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, pos: int) -> int:
    """The position after the JSON whitespace at pos (the pattern matches the empty string too)."""
    match = _WHITESPACE.match(text, pos)
    assert match is not None
    return match.end()


def _load(body: bytes) -> Any:
    # Strictly UTF-8 (RFC 8259 §8.1): json.loads(bytes) would also guess UTF-16/32.
    text = body.decode("utf-8-sig")
    if text.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")  # as json.loads says it
    return _DECODER.decode(text)


def parse_messages(body: bytes, *, allow_empty_array: bool) -> list[bytes]:
    """Validate a request body and return its messages, each compact JSON."""
    try:
        value = _load(body)
        if isinstance(value, list):
            if not value and not allow_empty_array:
                raise BadRequest("empty JSON array appends nothing")
            return [_dump(item) for item in value]
        return [_dump(value)]
    except (ValueError, RecursionError) as exc:
        # ValueError covers UnicodeDecodeError and numbers that overflow to infinity (1e400).
        raise BadRequest(f"invalid JSON: {str(exc)[:120]}") from None


def stored_messages(body: bytes, *, allow_empty_array: bool) -> bytes:
    """`encode_messages(parse_messages(body, ...))`: the stored form of a (small) request body."""
    try:
        value = _load(body)
        if not isinstance(value, list):
            return _dump(value) + _SEPARATOR
        if not value:
            if not allow_empty_array:
                raise BadRequest("empty JSON array appends nothing")
            return b""
        try:
            return _ENCODE(value)[1:-1].encode() + _SEPARATOR
        except UnicodeEncodeError:
            return encode_messages([_dump(item) for item in value])  # escapes only where it must
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON: {str(exc)[:120]}") from None


def stored_batch(body: bytes, *, allow_empty_array: bool) -> bytes:
    """`encode_messages(parse_messages(body, ...))`, for a large body on a worker thread.

    The same result, built one message at a time: a thread running it gives the GIL back
    between messages, where one json.loads or one join of a large batch would hold it (and so
    stall the event loop) for the whole of it.
    """
    try:
        text = body.decode("utf-8-sig")
        pos = _skip_space(text, 0)
        if not text.startswith("[", pos):
            return encode_messages(parse_messages(body, allow_empty_array=allow_empty_array))
        pos = _skip_space(text, pos + 1)
        out = bytearray()
        if text.startswith("]", pos):
            if not allow_empty_array:
                raise BadRequest("empty JSON array appends nothing")
            pos += 1
        else:
            decode = _DECODER.raw_decode
            while True:
                value, pos = decode(text, pos)
                out += _dump(value)
                out += _SEPARATOR
                pos = _skip_space(text, pos)
                if text.startswith(",", pos):
                    pos = _skip_space(text, pos + 1)
                elif text.startswith("]", pos):
                    pos += 1
                    break
                else:
                    raise ValueError(f"Expecting ',' delimiter: char {pos}")
        if _skip_space(text, pos) != len(text):
            raise ValueError(f"Extra data: char {pos}")
        return bytes(out)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON: {str(exc)[:120]}") from None


def encode_messages(messages: list[bytes]) -> bytes:
    """Stored form of a batch: every message followed by a comma."""
    if not messages:
        return b""
    return _SEPARATOR.join(messages) + _SEPARATOR


def frame(stored: bytes) -> bytes:
    """A read body from stored messages (possibly none)."""
    if not stored:
        return EMPTY_ARRAY
    return b"[" + stored[:-1] + b"]"


def first_messages(stored: bytes, count: int) -> bytes | None:
    """The stored form of the first `count` messages of a stored batch; None if it has fewer.

    A structural scan of those messages only (used to cut fork sub-offsets): no parse, and
    the bytes are already canonical.
    """
    if count <= 0:
        return b""
    ends = message_ends(stored, limit=count)
    return stored[: ends[-1]] if len(ends) == count else None


_TOP_LEVEL = re.compile(rb'[\[\]{},"]')
_NESTED = re.compile(rb'[\[\]{}"]')  # inside a value, commas say nothing about messages
_STRING_TAIL = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENING: Final = frozenset(b"[{")
_COMMA: Final = ord(",")
_QUOTE: Final = ord('"')


def iter_message_ends(data: bytes | memoryview, start: int = 0, stop: int | None = None) -> Iterator[int]:
    """Positions just past each message (after its comma), from `start`, a message boundary.

    Scans only structure: brackets and string bounds, and commas outside any value, so a
    message costs a regex search per bracket or string in it, never a parse. Stops at a closing
    bracket that opened before `start` (the end of a request's `[...]` batch), and looks for no
    structure past `stop` (a bounded scan: later boundaries stay unknown).
    """
    depth = 0
    pos = start
    stop = len(data) if stop is None else min(stop, len(data))
    top, nested, string_tail = _TOP_LEVEL.search, _NESTED.search, _STRING_TAIL.match
    while (match := (nested if depth else top)(data, pos, stop)) is not None:
        pos = match.end()
        char = data[pos - 1]
        if char == _QUOTE:
            tail = string_tail(data, pos)
            if tail is None:
                return
            pos = tail.end()
        elif char == _COMMA:
            yield pos
        elif char in _OPENING:
            depth += 1
        else:
            depth -= 1
            if depth < 0:
                return


def message_ends(stored: bytes | memoryview, start: int = 0, limit: int | None = None) -> list[int]:
    """Offsets just past each message of stored JSON (after its comma): the valid read starts.

    From `start` (a message boundary); at most `limit` of them, so a page costs its own size.
    """
    return list(iter_message_ends(stored, start) if limit is None else islice(iter_message_ends(stored, start), limit))


def is_message_end(stored: bytes | memoryview, position: int, start: int = 0) -> bool:
    """Whether `position` ends a message of stored JSON, scanning from `start` (a boundary) only."""
    for end in iter_message_ends(stored, start):
        if end >= position:
            return end == position
    return False


def count_batch(body: bytes, cap: int) -> int:
    """Messages in a request body (its top-level array's elements, or 1), counting at most to `cap`.

    A structural count that stops at `cap`, so refusing a huge batch costs little; the body is
    validated later by parse_messages (an invalid body's count is meaningless but harmless).
    """
    text = body.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not text.startswith(b"["):
        return 1
    inside = text[1:].lstrip(b" \t\r\n")
    if inside.startswith(b"]"):
        return 0
    return 1 + sum(1 for _ in islice(iter_message_ends(inside), cap))


def unframe(body: bytes) -> bytes:
    """The stored form of a read body (inverse of `frame`)."""
    return b"" if body == EMPTY_ARRAY else body[1:-1] + _SEPARATOR
