"""Deno KV's limits over HTTP: each is accepted at the limit and refused just past it with a 4xx whose
message names the limit, and a refused request changes nothing (the change stream's tail stays).

Key 2,048 bytes encoded, value 64 KiB, commit 800 KiB, 10 checks, 1,000 mutations, get-many 10 keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.origin.kv.conftest import KvApi

KEY_LIMIT = 2048
VALUE_LIMIT = 64 * 1024
COMMIT_LIMIT = 800 * 1024


def raw_bytes(n: int) -> dict[str, str]:
    """A bytes value of n bytes (its stored size is exactly n)."""
    return {"$bytes": base64.urlsafe_b64encode(b"\x07" * n).decode().rstrip("=")}


def string_key_of(size: int) -> list[str]:
    """A one-part key whose encoding is `size` bytes: a type code, the UTF-8 text, a terminator."""
    return ["k" * (size - 2)]


async def _refused(kv: KvApi, answer: tuple[int, Any], statuses: tuple[int, ...], *names: str) -> None:
    status, body = answer
    assert status in statuses, (status, body)
    message = body["error"]["message"]
    assert all(name in message for name in names), message


@pytest.fixture
async def seeded(kv: KvApi) -> KvApi:
    await kv.set(["seed"], "untouched")
    return kv


async def _unchanged(kv: KvApi, tail: str | None) -> None:
    assert await kv.tail() == tail
    assert (await kv.list(prefix=[]))["entries"][0]["value"] == "untouched"
    assert len((await kv.list(prefix=[]))["entries"]) == 1


async def test_key_size(seeded: KvApi) -> None:
    kv = seeded
    tail = await kv.tail()
    for attempt in (
        kv.call("PUT", "/keys", body=1, params={"key": json.dumps(string_key_of(KEY_LIMIT + 1))}),
        kv.atomic([{"type": "set", "key": string_key_of(KEY_LIMIT + 1), "value": 1}]),
        kv.atomic([], checks=[{"key": string_key_of(KEY_LIMIT + 1), "versionstamp": None}]),
        kv.call("GET", "/keys", params={"key": json.dumps(string_key_of(KEY_LIMIT + 1))}),
    ):
        await _refused(kv, await attempt, (400, 413), "key", str(KEY_LIMIT))
    await _unchanged(kv, tail)
    await kv.set(string_key_of(KEY_LIMIT), "at the limit")
    assert await kv.value(string_key_of(KEY_LIMIT)) == "at the limit"


async def test_value_size(seeded: KvApi) -> None:
    kv = seeded
    tail = await kv.tail()
    too_big = raw_bytes(VALUE_LIMIT + 1)
    await _refused(kv, await kv.call("PUT", "/keys", body=too_big, params={"key": '["v"]'}), (413,), "value", "65536")
    await _refused(kv, await kv.atomic([{"type": "set", "key": ["v"], "value": too_big}]), (413,), "65536")
    await _refused(kv, await kv.call("POST", "/queue/enqueue", body={"value": too_big}), (413,), "65536")
    await _unchanged(kv, tail)
    await kv.set(["v"], raw_bytes(VALUE_LIMIT))
    assert await kv.value(["v"]) == raw_bytes(VALUE_LIMIT)


async def test_commit_size(seeded: KvApi) -> None:
    kv = seeded
    tail = await kv.tail()
    # Each value under the value limit; 14 of them just under the commit limit (as base64 JSON, a body
    # over 1 MiB, which the server must accept), 15 over it.
    each = 58_000
    over = [{"type": "set", "key": ["c", str(i)], "value": raw_bytes(each)} for i in range(COMMIT_LIMIT // each + 1)]
    await _refused(kv, await kv.atomic(over), (413,), "commit", str(COMMIT_LIMIT))
    await _unchanged(kv, tail)
    under = over[: COMMIT_LIMIT // each]
    status, _ = await kv.atomic(under)
    assert status == 200
    assert len((await kv.list(prefix=["c"]))["entries"]) == len(under)


async def test_check_count(seeded: KvApi) -> None:
    kv = seeded
    tail = await kv.tail()
    checks = [{"key": ["n", str(i)], "versionstamp": None} for i in range(11)]
    await _refused(kv, await kv.atomic([{"type": "set", "key": ["n"], "value": 1}], checks), (400,), "checks", "10")
    await _unchanged(kv, tail)
    status, _ = await kv.atomic([{"type": "set", "key": ["n"], "value": 1}], checks[:10])
    assert status == 200


async def test_mutation_count(seeded: KvApi) -> None:
    kv = seeded
    tail = await kv.tail()
    mutations = [{"type": "set", "key": ["m", str(i)], "value": i} for i in range(1001)]
    await _refused(kv, await kv.atomic(mutations), (400,), "mutations", "1000")
    enqueues = [{"type": "enqueue", "value": i} for i in range(1001)]  # enqueues count as mutations
    await _refused(kv, await kv.atomic(enqueues), (400,), "mutations", "1000")
    await _unchanged(kv, tail)
    status, _ = await kv.atomic(mutations[:1000])
    assert status == 200
    assert len(await kv.list_all(1000, prefix=["m"])) == 1000


async def test_get_many_key_count(seeded: KvApi) -> None:
    kv = seeded
    keys = [["g", str(i)] for i in range(11)]
    await _refused(kv, await kv.call("POST", "/get-many", body={"keys": keys}), (400,), "10")
    status, answer = await kv.call("POST", "/get-many", body={"keys": keys[:10]})
    assert status == 200 and len(answer["entries"]) == 10


async def test_list_limit(seeded: KvApi) -> None:
    kv = seeded
    for bad in ("0", "1001", "-1", "ten", "1.5"):
        status, body = await kv.call("GET", "/list", params={"prefix": "[]", "limit": bad})
        assert status == 400 and "limit" in body["error"]["message"], (bad, body)
    assert len((await kv.list(prefix=[], limit=1000))["entries"]) == 1


async def test_a_body_past_the_kv_limit_is_refused_unread_with_or_without_a_length(kv: KvApi) -> None:
    """No commit needs more than 4 MiB of JSON: a bigger body is a 413 before it is parsed, whether
    it announces its length or comes chunked (the server counts as it reads)."""
    await kv.set(["seed"], 1)
    tail = await kv.tail()
    filler = json.dumps({"checks": [], "mutations": [], "padding": "x" * (5 * 1024 * 1024)}).encode()
    await _refused(kv, await kv.call("POST", "/atomic", data=filler), (413,), "4194304")

    async def chunks() -> Any:
        for start in range(0, len(filler), 256 * 1024):
            yield filler[start : start + 256 * 1024]

    async with kv.http.post(f"{kv.base}/atomic", data=chunks(), headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413 and "4194304" in (await r.json())["error"]["message"]
    assert await kv.tail() == tail
