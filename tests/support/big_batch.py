"""A JSON stream holding one append of a million tiny messages: one record the old code rescanned.

Every stored message is `{"a":d},` (MESSAGE bytes), so message k starts at MESSAGE * k and a
position between two of those is not a message boundary.
"""

from __future__ import annotations

import io

import aiohttp

BIG_BATCH = 1_000_000
MESSAGE = 8


def at(generation: str, message: int, extra: int = 0) -> str:
    """The offset where message number `message` of the batch starts (plus `extra` bytes)."""
    return f"{generation}_{MESSAGE * message + extra:016d}"


def value(message: int) -> dict[str, int]:
    return {"a": message % 10}


async def big_stream(http: aiohttp.ClientSession, base_url: str, name: str, *, then: bytes = b"") -> tuple[str, str]:
    """Create JSON stream `name` holding the batch (and `then` appended after it, if any);
    (its protocol URL, its generation)."""
    url = base_url + "/v1/stream/" + name
    json_type = {"Content-Type": "application/json"}
    async with http.put(url, headers=json_type) as r:
        assert r.status == 201
        generation = r.headers["Stream-Next-Offset"].split("_")[0]
    batch = b"[" + b",".join(b'{"a":%d}' % (i % 10) for i in range(BIG_BATCH)) + b"]"
    async with http.post(url, data=io.BytesIO(batch), headers=json_type) as r:
        assert r.status in (200, 204), await r.text()
    if then:
        async with http.post(url, data=then, headers=json_type) as r:
            assert r.status in (200, 204), await r.text()
    return url, generation
