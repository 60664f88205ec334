"""Hypothesis strategies and the reference order for KV keys, shared by the KV tests."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from plugin_streams.shared.kv.keys import Key, KeyPart

key_parts: st.SearchStrategy[KeyPart] = st.one_of(
    st.binary(max_size=6) | st.sampled_from([b"", b"\x00", b"\x00\xff", b"\xff", b"a\x00b"]),
    st.text(max_size=6) | st.sampled_from(["", "\x00", "a\x00", "é", "\U0001f600"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(2**2000), max_value=2**2000),
    st.sampled_from([0, 1, -1, 255, 256, -255, -256, 2**64 - 1, 2**64, -(2**64) + 1, -(2**64)]),
    st.floats(allow_nan=False),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, 5e-324, -5e-324]),
    st.booleans(),
)
keys: st.SearchStrategy[Key] = st.lists(key_parts, max_size=4).map(tuple)


def _part_order(part: KeyPart) -> tuple[int, object]:
    """Deno's order of key parts, written independently of the byte encoding."""
    if isinstance(part, bool):
        return (4 + int(part), 0)
    if isinstance(part, bytes):
        return (0, part)
    if isinstance(part, str):
        return (1, part.encode("utf-8"))
    if isinstance(part, int):
        return (2, part)
    if math.isnan(part):
        return (3, (1 if math.copysign(1.0, part) > 0 else -1, 0.0, 0.0))
    return (3, (0, part, math.copysign(1.0, part)))


def reference_order(key: Key) -> tuple[tuple[int, object], ...]:
    return tuple(_part_order(part) for part in key)


def same_part(a: KeyPart, b: KeyPart) -> bool:
    """Equal with the type kept (1 is not 1.0 nor True) and -0.0 told from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def same_key(a: Key, b: Key) -> bool:
    return len(a) == len(b) and all(same_part(x, y) for x, y in zip(a, b, strict=True))
