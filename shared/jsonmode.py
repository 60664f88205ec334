"""JSON mode (PROTOCOL.md §9.1): validation, one-level flattening, and read framing.

A JSON stream stores each message as compact JSON followed by a comma, so a read of any range
of whole messages is `[` + the stored bytes without their final comma + `]`: no parsing on
the read path. Messages are re-serialised once on append; values are preserved exactly
(Python's json round-trips integers of any size and floats by shortest repr).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from shared.errors import BadRequest

_SEPARATOR: Final = b","
EMPTY_ARRAY: Final = b"[]"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _dump(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except UnicodeEncodeError:
        # Lone surrogates (legal as JSON escapes) cannot be UTF-8 encoded; keep them escaped.
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()


def parse_messages(body: bytes, *, allow_empty_array: bool) -> list[bytes]:
    """Validate a request body and return its messages, each compact JSON."""
    try:
        # Strictly UTF-8 (RFC 8259 §8.1): json.loads(bytes) would also guess UTF-16/32.
        value = json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant)
        if isinstance(value, list):
            if not value and not allow_empty_array:
                raise BadRequest("empty JSON array appends nothing")
            return [_dump(item) for item in value]
        return [_dump(value)]
    except (ValueError, RecursionError) as exc:
        # ValueError covers UnicodeDecodeError and numbers that overflow to infinity (1e400).
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


def split_stored(stored: bytes) -> list[bytes]:
    """Messages of a stored batch, each compact JSON (used to cut fork sub-offsets)."""
    if not stored:
        return []
    return [_dump(item) for item in json.loads(frame(stored))]


_STRUCTURE = re.compile(rb'[\[\]{},"]')
_STRING_TAIL = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)


def message_ends(stored: bytes) -> list[int]:
    """Offsets just past each message of stored JSON (after its comma): the valid read starts.

    Scans only structure (brackets, commas, string bounds), so a 64 KiB record costs a few
    regex searches per message rather than a parse.
    """
    ends: list[int] = []
    depth = 0
    pos = 0
    while (match := _STRUCTURE.search(stored, pos)) is not None:
        char = match.group()
        pos = match.end()
        if char == b'"':
            tail = _STRING_TAIL.match(stored, pos)
            if tail is None:
                break
            pos = tail.end()
        elif char in (b"[", b"{"):
            depth += 1
        elif char in (b"]", b"}"):
            depth -= 1
        elif depth == 0:
            ends.append(pos)
    return ends


def unframe(body: bytes) -> bytes:
    """The stored form of a read body (inverse of `frame`)."""
    return b"" if body == EMPTY_ARRAY else body[1:-1] + _SEPARATOR
