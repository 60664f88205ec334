"""KV values: JSON documents, raw bytes, and Deno's KvU64, each stored as a typed byte string.

Deno stores any structured-cloneable value; over HTTP this project stores what JSON can carry,
plus bytes and KvU64 (the only type `sum`, `min` and `max` work on, as in Deno). A stored value is
one tag byte then its payload, and that is also how it travels inside commit records and snapshots:

    0x01  JSON   compact UTF-8 JSON text (separators without spaces, non-ASCII kept, no NaN/Infinity)
    0x02  bytes  the bytes
    0x03  KvU64  8 bytes big-endian

The payload is limited to 64 KiB (Deno's `MAX_VALUE_SIZE_BYTES`, 65,536); over it is a 413.

Wire form (JSON, for the HTTP API): a JSON value is itself, except at the top level three one-key
objects are typed markers: `{"$bytes": "<base64url>"}`, `{"$u64": "<decimal>"}`, and `{"$json": v}`,
which carries any JSON verbatim (so a document that happens to look like a marker survives a round
trip: `value_to_wire` wraps such documents itself).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Final

from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.kv.keys import bytes_from_base64url

MAX_VALUE_BYTES: Final = 65_536
U64_LIMIT: Final = 1 << 64
TAG_JSON: Final = 0x01
TAG_BYTES: Final = 0x02
TAG_U64: Final = 0x03
_MARKERS: Final = frozenset({"$bytes", "$u64", "$json"})

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]


@dataclass(frozen=True, slots=True)
class KvU64:
    """Deno's `Deno.KvU64`: an unsigned 64-bit integer, the operand type of sum/min/max."""

    value: int

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or not 0 <= self.value < U64_LIMIT:
            raise BadRequest(f"a KvU64 must be an integer in [0, 2^64), got {str(self.value)[:40]}")


KvValue = Json | bytes | KvU64


def encode_value(value: KvValue) -> bytes:
    """The stored form of `value`: a tag byte then the payload; 400 if not storable, 413 if too big."""
    if isinstance(value, bytes):
        return _sized(TAG_BYTES, value)
    if isinstance(value, KvU64):
        return bytes([TAG_U64]) + value.value.to_bytes(8, "big")
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        payload = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
        raise BadRequest(f"value is not storable JSON, bytes or KvU64: {str(exc)[:80]}") from None
    return _sized(TAG_JSON, payload)


def _sized(tag: int, payload: bytes) -> bytes:
    if len(payload) > MAX_VALUE_BYTES:
        raise PayloadTooLarge(f"value is {len(payload)} bytes, over the limit of {MAX_VALUE_BYTES} bytes")
    return bytes([tag]) + payload


def decode_value(stored: bytes) -> KvValue:
    """The value whose stored form is `stored` (as written by `encode_value`)."""
    tag, payload = stored[0], stored[1:]
    if tag == TAG_JSON:
        decoded: Json = json.loads(payload)
        return decoded
    if tag == TAG_BYTES:
        return bytes(payload)
    if tag == TAG_U64 and len(payload) == 8:
        return KvU64(int.from_bytes(payload, "big"))
    raise ValueError(f"stored value has unknown tag 0x{tag:02x} or a bad length")


def u64_of(stored: bytes) -> int | None:
    """The integer of a stored KvU64, or None when the stored value is of another type."""
    if stored[0] == TAG_U64:
        return int.from_bytes(stored[1:9], "big")
    return None


def stored_u64(value: int) -> bytes:
    return bytes([TAG_U64]) + value.to_bytes(8, "big")


def value_size(stored: bytes) -> int:
    """The size that counts towards the value and commit limits: the payload, without the tag."""
    return len(stored) - 1


# ---- JSON wire form ----------------------------------------------------------------------------


def value_to_wire(value: KvValue) -> Json:
    if isinstance(value, bytes):
        return {"$bytes": base64.urlsafe_b64encode(value).decode("ascii").rstrip("=")}
    if isinstance(value, KvU64):
        return {"$u64": str(value.value)}
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _MARKERS:
        return {"$json": value}
    return value


def value_from_wire(wire: Json) -> KvValue:
    """Parse a value from its wire form; a 400 names what is malformed."""
    if isinstance(wire, dict) and len(wire) == 1:
        ((tag, inner),) = wire.items()
        if tag == "$json":
            return inner
        if tag == "$bytes":
            if not isinstance(inner, str):
                raise BadRequest("value $bytes must be a base64url string")
            return bytes_from_base64url(inner, what="value $bytes")
        if tag == "$u64":
            return u64_from_wire(inner)
    return wire


def u64_from_wire(wire: Json, *, what: str = "value $u64") -> KvU64:
    """A KvU64 from `"<decimal>"` (the $u64 marker's content) or a non-negative JSON integer."""
    number: int | None = None
    if isinstance(wire, str) and wire.isascii() and wire.isdigit():
        number = int(wire)
    elif isinstance(wire, int) and not isinstance(wire, bool):
        number = wire
    if number is None or not 0 <= number < U64_LIMIT:
        raise BadRequest(f"{what} must be a KvU64: a decimal string or integer in [0, 2^64)")
    return KvU64(number)
