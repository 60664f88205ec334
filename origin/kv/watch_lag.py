"""Watch lag: when the commit that a live read of a change stream hands over was made.

A KV change event begins with a fixed-width head (origin/kv/events.py):

    {"versionstamp":"<20 hex>","offset":"<offset after this commit>","at":<commit time, ms>,...

and the last event of a read is the one whose embedded offset is the read's end (the offset
after a commit is where the next read starts). So the commit time of the newest event a watcher
receives is found by one reverse search for that exact head from the end of the body: O(1) in the
events delivered, no JSON parsing, nothing allocated but the needle.

Only the head whose offset equals the read's end is taken: a value that merely looks like a head
(an object with the same keys) carries another offset, so it is skipped, and a body that is not a
KV change stream at all yields None. A writer could forge a value predicting its own commit's end
offset (the layout is fixed width); that skews one sample of its own database's watch lag, no more.
"""

from __future__ import annotations

from typing import Final

from plugin_streams.shared.kv.routes import KV_STREAM_ROOT

_HEAD_START: Final = b'{"versionstamp":"'
_VERSIONSTAMP_HEX: Final = 20
_HEX: Final = frozenset(b"0123456789abcdef")
#: Enough digits for any millisecond time until the year 2286 (and a few to spare).
_MAX_AT_DIGITS: Final = 16


def is_change_stream(path: str) -> bool:
    """Whether a stream path is a KV database's change stream, whose deliveries are measured."""
    return path.startswith(KV_STREAM_ROOT)


def last_commit_ms(body: bytes, end_offset: str) -> int | None:
    """The `at` (ms) of the event of `body` that ends at `end_offset`, or None if there is none."""
    needle = b'","offset":"' + end_offset.encode("ascii") + b'","at":'
    found = body.rfind(needle)
    start = found - _VERSIONSTAMP_HEX - len(_HEAD_START)
    if found < 0 or start < 0 or body[start : start + len(_HEAD_START)] != _HEAD_START:
        return None
    if not _HEX.issuperset(body[found - _VERSIONSTAMP_HEX : found]):
        return None
    digits = found + len(needle)
    end = digits
    limit = min(len(body), digits + _MAX_AT_DIGITS)
    while end < limit and 0x30 <= body[end] <= 0x39:
        end += 1
    if end == digits or end >= len(body) or body[end] != ord(","):
        return None
    return int(body[digits:end])


def delivery_seconds(body: bytes, end_offset: str, now_ms: int) -> float | None:
    """Seconds from the newest commit of `body` to `now_ms` (never negative: clocks may step back)."""
    at_ms = last_commit_ms(body, end_offset)
    return None if at_ms is None else max(0, now_ms - at_ms) / 1000
