"""KV keys: tuples of parts, encoded to bytes whose order is the order of the tuples.

A key is a tuple of parts: `bytes`, `str`, `int` (Deno's `bigint`, any size), `float` (Deno's
`number`) and `bool`. Keys are stored and compared as bytes in the FoundationDB tuple-layer encoding
that Deno KV uses (denokv_proto's codec), so a range of keys is a range of byte strings:

    bytes   0x01, the bytes with each 0x00 written 0x00 0xFF, then 0x00
    str     0x02, the same over its UTF-8
    int     0x14 for zero; 0x14+n / 0x14-n then n big-endian bytes for |v| < 2^64 (the negative ones
            as ones' complement, so they sort numerically); 0x1D / 0x0B, a length byte (inverted for
            negatives), then the bytes for bigger values (at most 255 bytes)
    float   0x21, then the IEEE-754 bits big-endian with the sign bit flipped (positives) or all
            bits flipped (negatives); NaN is canonicalised as in denokv
    bool    0x26 (false), 0x27 (true)

Order between types: the type codes decide, so bytes < str < int < float < False < True. That is
what Deno actually does (denokv_proto's `KeyPart` documents "byte array < string < bigint < float <
false < true" and its codec sorts so); the prose page of `Deno.KvKeyPart` lists number before bigint,
which the implementation does not do. Within floats: -NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN.

No encoded part starts with 0x00 or 0xFF, so every key strictly under a prefix P lies in
`(enc(P), enc(P) + 0xFF)`; Deno's `list({prefix})` excludes P itself, and so does `prefix_range`.

Wire form (JSON, for the HTTP API): a key is an array; `str` and `bool` are JSON strings and
booleans; a finite `float` is a JSON number; `int` is `{"$bigint": "<decimal>"}` (as the project's
KV notes propose, because JSON numbers are doubles, as in JavaScript); `bytes` is
`{"$bytes": "<base64url>"}`; a non-finite float is `{"$number": "NaN" | "Infinity" | "-Infinity"}`.
A bare JSON number is always a float, even when written without a fraction (`1` is Deno's `1`).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Sequence
from typing import Final

from plugin_streams.shared.errors import BadRequest, PayloadTooLarge

KeyPart = bytes | str | int | float | bool
Key = tuple[KeyPart, ...]

#: Deno's limit on a serialized key (denokv_proto limits.rs MAX_READ_KEY_SIZE_BYTES / write size).
MAX_KEY_BYTES: Final = 2048

BYTES: Final = 0x01
STRING: Final = 0x02
NEG_INT_START: Final = 0x0B
INT_ZERO: Final = 0x14
POS_INT_END: Final = 0x1D
DOUBLE: Final = 0x21
FALSE: Final = 0x26
TRUE: Final = 0x27
ESCAPE: Final = 0xFF
_SMALL_INT_BYTES: Final = 8
_MAX_INT_BYTES: Final = 255
_SIGN_BIT: Final = 1 << 63
_ALL_BITS: Final = (1 << 64) - 1
_CANONICAL_NAN_POS: Final = 0x7FF8000000000000
_CANONICAL_NAN_NEG: Final = 0xFFF8000000000000
_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class BadKey(BadRequest):
    """A key that is not a valid KV key (bad part type, bad wire form, undecodable bytes)."""

    code = "bad_key"


def encode_key(key: Sequence[KeyPart]) -> bytes:
    """The order-preserving encoding of `key`; raises BadRequest/PayloadTooLarge naming what is wrong."""
    out = bytearray()
    for part in key:
        _encode_part(out, part)
    if len(out) > MAX_KEY_BYTES:
        raise PayloadTooLarge(f"key is {len(out)} bytes encoded, over the limit of {MAX_KEY_BYTES} bytes")
    return bytes(out)


def _encode_part(out: bytearray, part: object) -> None:
    # bool first: it is a subclass of int.
    if isinstance(part, bool):
        out.append(TRUE if part else FALSE)
    elif isinstance(part, bytes):
        out.append(BYTES)
        out += part.replace(b"\x00", b"\x00\xff")
        out.append(0)
    elif isinstance(part, str):
        try:
            data = part.encode("utf-8")
        except UnicodeEncodeError:
            raise BadKey("key string part is not valid Unicode (lone surrogate)") from None
        out.append(STRING)
        out += data.replace(b"\x00", b"\x00\xff")
        out.append(0)
    elif isinstance(part, int):
        _encode_int(out, part)
    elif isinstance(part, float):
        out.append(DOUBLE)
        out += _float_bytes(part)
    else:
        raise BadKey(f"key part of type {type(part).__name__} is not bytes, str, int, float or bool")


def _encode_int(out: bytearray, value: int) -> None:
    if value == 0:
        out.append(INT_ZERO)
        return
    magnitude = abs(value)
    size = (magnitude.bit_length() + 7) // 8
    if size > _MAX_INT_BYTES:
        raise BadKey(f"key integer part needs {size} bytes, over the limit of {_MAX_INT_BYTES}")
    data = magnitude.to_bytes(size, "big")
    if value > 0:
        out += bytes([INT_ZERO + size]) if size <= _SMALL_INT_BYTES else bytes([POS_INT_END, size])
        out += data
    else:
        out += bytes([INT_ZERO - size]) if size <= _SMALL_INT_BYTES else bytes([NEG_INT_START, size ^ 0xFF])
        out += bytes(b ^ 0xFF for b in data)


def _float_bytes(value: float) -> bytes:
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    if math.isnan(value):
        bits = _CANONICAL_NAN_NEG if bits & _SIGN_BIT else _CANONICAL_NAN_POS
    bits = bits ^ _ALL_BITS if bits & _SIGN_BIT else bits ^ _SIGN_BIT
    return int(bits).to_bytes(8, "big")


def decode_key(data: bytes) -> Key:
    """The key whose encoding is `data`; raises BadKey (a 400) on bytes that are not one."""
    parts: list[KeyPart] = []
    at = 0
    while at < len(data):
        part, at = _decode_part(data, at)
        parts.append(part)
    return tuple(parts)


def _decode_part(data: bytes, at: int) -> tuple[KeyPart, int]:
    tag = data[at]
    at += 1
    if tag in (BYTES, STRING):
        raw, at = _read_escaped(data, at)
        if tag == BYTES:
            return raw, at
        try:
            return raw.decode("utf-8"), at
        except UnicodeDecodeError:
            raise BadKey("encoded key holds a string part that is not UTF-8") from None
    if NEG_INT_START <= tag <= POS_INT_END:
        return _decode_int(data, at, tag)
    if tag == DOUBLE:
        raw = _take(data, at, 8)
        bits = int.from_bytes(raw, "big")
        bits = bits ^ _SIGN_BIT if bits & _SIGN_BIT else bits ^ _ALL_BITS
        return float(struct.unpack(">d", bits.to_bytes(8, "big"))[0]), at + 8
    if tag in (FALSE, TRUE):
        return tag == TRUE, at
    raise BadKey(f"encoded key holds unknown type code 0x{tag:02x}")


def _decode_int(data: bytes, at: int, tag: int) -> tuple[int, int]:
    if tag == POS_INT_END:
        size, at = _take(data, at, 1)[0], at + 1
        return int.from_bytes(_take(data, at, size), "big"), at + size
    if tag == NEG_INT_START:
        size, at = _take(data, at, 1)[0] ^ 0xFF, at + 1
        return -int.from_bytes(bytes(b ^ 0xFF for b in _take(data, at, size)), "big"), at + size
    size = abs(tag - INT_ZERO)
    raw = _take(data, at, size)
    if tag >= INT_ZERO:
        return int.from_bytes(raw, "big"), at + size
    return -int.from_bytes(bytes(b ^ 0xFF for b in raw), "big"), at + size


def _take(data: bytes, at: int, size: int) -> bytes:
    if at + size > len(data):
        raise BadKey("encoded key ends in the middle of a part")
    return data[at : at + size]


def _read_escaped(data: bytes, at: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        end = data.find(b"\x00", at)
        if end < 0:
            raise BadKey("encoded key has an unterminated bytes or string part")
        out += data[at:end]
        if end + 1 < len(data) and data[end + 1] == ESCAPE:
            out.append(0)
            at = end + 2
            continue
        return bytes(out), end + 1


def prefix_range(prefix: bytes) -> tuple[bytes, bytes]:
    """[start, end) of the encoded keys strictly under the encoded `prefix` (the prefix itself excluded)."""
    return prefix + b"\x00", prefix + b"\xff"


# ---- JSON wire form ----------------------------------------------------------------------------


def key_to_wire(key: Sequence[KeyPart]) -> list[object]:
    """The JSON-ready form of `key` (see the module docstring)."""
    return [_part_to_wire(part) for part in key]


def _part_to_wire(part: KeyPart) -> object:
    if isinstance(part, bool | str):
        return part
    if isinstance(part, bytes):
        return {"$bytes": base64.urlsafe_b64encode(part).decode("ascii").rstrip("=")}
    if isinstance(part, int):
        return {"$bigint": str(part)}
    if math.isnan(part):
        return {"$number": "NaN"}
    if math.isinf(part):
        return {"$number": "Infinity" if part > 0 else "-Infinity"}
    return part


def key_from_wire(wire: object) -> Key:
    """Parse a key from its JSON wire form; raises BadKey (a 400) naming what is malformed."""
    if not isinstance(wire, list):
        raise BadKey("a key must be a JSON array of parts")
    return tuple(_part_from_wire(part) for part in wire)


def _part_from_wire(wire: object) -> KeyPart:
    if isinstance(wire, bool | str):
        return wire
    if isinstance(wire, int | float):
        return float(wire)
    if isinstance(wire, dict) and len(wire) == 1:
        ((tag, text),) = wire.items()
        if isinstance(text, str):
            return _tagged_part(tag, text)
    raise BadKey(
        "a key part must be a string, boolean, number, {'$bigint': str}, {'$bytes': base64url} "
        "or {'$number': 'NaN'|'Infinity'|'-Infinity'}"
    )


def _tagged_part(tag: str, text: str) -> KeyPart:
    if tag == "$bigint":
        if not text.lstrip("-").isdigit() or not text.isascii():
            raise BadKey(f"key part $bigint {text[:40]!r} is not a decimal integer")
        return int(text)
    if tag == "$bytes":
        return bytes_from_base64url(text, what="key part $bytes")
    if tag == "$number" and text in _NON_FINITE:
        return _NON_FINITE[text]
    raise BadKey(f"unknown key part tag {tag[:40]!r} (or bad value for it)")


def bytes_from_base64url(text: str, *, what: str) -> bytes:
    """Decode unpadded (or padded) base64url, raising BadRequest naming `what`."""
    if "+" in text or "/" in text:
        raise BadRequest(f"{what} is not base64url (it uses '+' or '/')")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not base64url") from None
