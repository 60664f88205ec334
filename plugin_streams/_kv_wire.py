"""The KV API's JSON wire forms of keys and values, and prefix matching on wire-form keys.

The server's codecs live in server code the client may not import; the forms are fixed by the
HTTP contract and mirrored here:

- a key is a JSON array of parts: `str` and `bool` as themselves, a finite `float` as a JSON
  number, an `int` (Deno's bigint, any size) as `{"$bigint": "<decimal>"}`, `bytes` as
  `{"$bytes": "<base64url>"}`, a non-finite float as `{"$number": "NaN" | "Infinity" | "-Infinity"}`.
  A bare JSON number is always a float (JSON numbers are doubles, as in JavaScript), so
  `("n", 1)` and `("n", 1.0)` are different keys, as `1n` and `1` are in Deno.
- a value is any JSON, except that at the top level three one-key objects are typed markers:
  `{"$bytes": ...}` (bytes), `{"$u64": "<decimal>"}` (KvU64) and `{"$json": v}` (v verbatim, so a
  document that looks like a marker survives the round trip: `value_to_wire` wraps those itself).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

KeyPart = bytes | str | int | float | bool
Key = tuple[KeyPart, ...]
#: A key's wire form: a JSON array (a list after json.loads).
WireKey = list[Any]

U64_LIMIT: Final = 1 << 64
_MARKERS: Final = frozenset({"$bytes", "$u64", "$json"})
_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True, slots=True)
class KvU64:
    """Deno's `Deno.KvU64`: an unsigned 64-bit integer, the operand type of sum, min and max."""

    value: int

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or not 0 <= self.value < U64_LIMIT:
            raise ValueError(f"a KvU64 is an integer in [0, 2^64), not {str(self.value)[:40]}")

    def __int__(self) -> int:
        return self.value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _from_b64url(text: str, what: str) -> bytes:
    if "+" in text or "/" in text:  # b64decode would take these for the altchars' originals
        raise ValueError(f"{what} is not base64url (it uses '+' or '/'): {text[:40]!r}")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64url: {text[:40]!r}") from None


# ---- keys --------------------------------------------------------------------------------------


def key_to_wire(key: Sequence[KeyPart]) -> WireKey:
    """The wire form of `key` (a tuple or list of parts); ValueError names a part of another type."""
    if isinstance(key, str | bytes):
        raise TypeError("a key is a tuple of parts, e.g. ('users', 'alice'), not a bare str or bytes")
    return [_part_to_wire(part) for part in key]


def _part_to_wire(part: object) -> Any:
    # bool first: it is a subclass of int.
    if isinstance(part, bool | str):
        return part
    if isinstance(part, bytes | bytearray | memoryview):
        return {"$bytes": _b64url(bytes(part))}
    if isinstance(part, int):
        return {"$bigint": str(part)}
    if isinstance(part, float):
        if math.isnan(part):
            return {"$number": "NaN"}
        if math.isinf(part):
            return {"$number": "Infinity" if part > 0 else "-Infinity"}
        return part
    raise TypeError(f"a key part is bytes, str, int, float or bool, not {type(part).__name__}")


def key_from_wire(wire: Any) -> Key:
    """The key whose wire form is `wire`; ValueError if it is not one."""
    if not isinstance(wire, list):
        raise ValueError("a key's wire form is a JSON array")
    return tuple(_part_from_wire(part) for part in wire)


def _part_from_wire(wire: Any) -> KeyPart:
    if isinstance(wire, bool | str):
        return wire
    if isinstance(wire, int | float):
        return float(wire)
    if isinstance(wire, dict) and len(wire) == 1:
        ((tag, text),) = wire.items()
        if tag == "$bigint" and isinstance(text, str) and text.lstrip("-").isdigit():
            return int(text)
        if tag == "$bytes" and isinstance(text, str):
            return _from_b64url(text, "a key's $bytes part")
        if tag == "$number" and text in _NON_FINITE:
            return _NON_FINITE[text]
    raise ValueError(f"not a key part's wire form: {str(wire)[:60]}")


def _same_part(a: Any, b: Any) -> bool:
    """Whether two wire-form parts name the same part: JSON numbers compare as floats (`1` is `1.0`)."""
    a_number = isinstance(a, int | float) and not isinstance(a, bool)
    b_number = isinstance(b, int | float) and not isinstance(b, bool)
    if a_number or b_number:
        return a_number and b_number and float(a) == float(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return _same_tagged(a, b)
    return type(a) is type(b) and bool(a == b)


def _same_tagged(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # `{"$bigint": "007"}` is `{"$bigint": "7"}`, base64url with or without padding is the same
    # bytes: compare what the markers mean, not how they are spelled.
    try:
        first, second = _part_from_wire(a), _part_from_wire(b)
    except ValueError:
        return a == b
    if type(first) is not type(second):
        return False
    if isinstance(first, float) and isinstance(second, float) and math.isnan(first):
        return math.isnan(second)
    return first == second


def is_under(key: WireKey, prefix: WireKey) -> bool:
    """Whether wire-form `key` is under wire-form `prefix`, as a `list(prefix=)` would see it:
    it has more parts than the prefix and starts with the prefix's parts. The empty prefix holds
    every key; a key is not under itself (as in Deno)."""
    return len(key) > len(prefix) and all(_same_part(k, p) for k, p in zip(key, prefix, strict=False))


def under_any(key: WireKey, prefixes: Sequence[WireKey]) -> bool:
    return any(is_under(key, prefix) for prefix in prefixes)


# ---- values ------------------------------------------------------------------------------------

KvValue = Any  # JSON (None, bool, int, float, str, list, dict), bytes or KvU64


def value_to_wire(value: KvValue) -> Any:
    """The wire form of a stored value: JSON as itself, bytes and KvU64 as markers."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": _b64url(bytes(value))}
    if isinstance(value, KvU64):
        return {"$u64": str(value.value)}
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _MARKERS:
        return {"$json": value}
    return value


def value_from_wire(wire: Any) -> KvValue:
    """The value whose wire form is `wire` (the markers decoded)."""
    if isinstance(wire, dict) and len(wire) == 1:
        ((tag, inner),) = wire.items()
        if tag == "$json":
            return inner
        if tag == "$bytes" and isinstance(inner, str):
            return _from_b64url(inner, "a value's $bytes")
        if tag == "$u64" and isinstance(inner, str) and inner.isdigit():
            return KvU64(int(inner))
    return wire


def operand_to_wire(value: KvU64 | int) -> Any:
    """The operand of sum/min/max: a KvU64 (a plain int is taken as one)."""
    return value_to_wire(value if isinstance(value, KvU64) else KvU64(value))
