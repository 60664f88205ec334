"""The KV client against a real origin: Deno's get/set/delete/list/atomic, wire types, errors, sync."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from plugin_streams import BadRequest, KvU64, PayloadTooLarge, Streams, SyncStreams
from tests.support.processes import OriginProcess


def db_name() -> str:
    """A database of its own for each test (the KV tests share an origin)."""
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_get_set_delete_and_typed_values(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        missing = await kv.get(("users", "alice"))
        assert (missing.value, missing.versionstamp, missing.offset) == (None, None, "-1")  # never written
        first = await kv.set(("users", "alice"), {"name": "Alice", "tags": ["a"]})
        assert first.ok and first.versionstamp is not None and first.offset is not None
        entry = await kv.get(("users", "alice"))
        assert entry.value == {"name": "Alice", "tags": ["a"]}
        assert (entry.versionstamp, entry.offset) == (first.versionstamp, first.offset)
        # bytes, KvU64 and documents that look like markers keep their types.
        await kv.set(("blob",), b"\x00\xff")
        await kv.set(("count",), KvU64(2**64 - 1))
        await kv.set(("doc",), {"$u64": "not a number"})
        got = await kv.get_many([("blob",), ("count",), ("doc",), ("nothing",)])
        assert [e.value for e in got] == [b"\x00\xff", KvU64(2**64 - 1), {"$u64": "not a number"}, None]
        assert len({e.offset for e in got}) == 1  # one read, one point of the history
        # int (bigint) and float parts are different keys, as in Deno.
        await kv.set(("n", 1), "bigint")
        await kv.set(("n", 1.0), "float")
        assert [(await kv.get(("n", part))).value for part in (1, 1.0)] == ["bigint", "float"]
        second = await kv.set(("users", "alice"), "v2")
        assert second.versionstamp is not None and first.versionstamp < second.versionstamp  # they only rise
        deleted = await kv.delete(("users", "alice"))
        assert deleted.ok and (await kv.get(("users", "alice"))).value is None


async def test_list_pages_with_the_cursor_in_key_order(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        op = kv.atomic()
        for i in range(25):
            op.set(("items", i), i)
        op.set(("items",), "the prefix itself").set(("other", 1), "elsewhere")
        assert (await op.commit()).ok
        listed = [e async for e in kv.list(("items",), batch_size=4)]
        assert [e.key for e in listed] == [("items", i) for i in range(25)]  # bigints in numeric order
        assert {e.offset for e in listed} == {(await kv.get(("items", 0))).offset}  # the read point of each page
        assert [e.value async for e in kv.list(("items",), reverse=True, limit=3, batch_size=2)] == [24, 23, 22]
        ranged = [e.value async for e in kv.list(start=("items", 5), end=("items", 9))]
        assert ranged == [5, 6, 7, 8]
        assert [e.value async for e in kv.list(("items",), start=("items", 23))] == [23, 24]
        every = [e.key async for e in kv.list(batch_size=1000)]
        assert every[0] == ("items",) and every[-1] == ("other", 1) and len(every) == 27
        with pytest.raises(ValueError):
            [e async for e in kv.list(("items",), batch_size=0)]


async def test_atomic_checks_sum_min_max_and_a_failed_check(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        created = await kv.atomic().check(("account",), None).set(("account",), {"balance": 10}).commit()
        assert created.ok
        again = await kv.atomic().check(("account",), None).set(("account",), {"balance": 0}).commit()
        assert not again.ok and again.versionstamp is None  # the key exists now: nothing written
        entry = await kv.get(("account",))
        assert entry.value == {"balance": 10}
        moved = await (
            kv.atomic()
            .check(("account",), entry.versionstamp)
            .set(("account",), {"balance": 5})
            .sum(("total",), 7)
            .sum(("total",), KvU64(3))
            .min(("low",), 9)
            .max(("high",), 4)
            .commit()
        )
        assert moved.ok
        stale = await kv.atomic().check(("account",), entry.versionstamp).delete(("account",)).commit()
        assert not stale.ok
        values = [e.value for e in await kv.get_many([("account",), ("total",), ("low",), ("high",)])]
        assert values == [{"balance": 5}, KvU64(10), KvU64(9), KvU64(4)]
        await kv.atomic().min(("low",), 2).max(("high",), 1).sum(("total",), 2**64 - 1).commit()
        assert [e.value for e in await kv.get_many([("low",), ("high",), ("total",)])] == [KvU64(2), KvU64(4), KvU64(9)]


async def test_bad_input_is_a_4xx_naming_it_and_changes_nothing(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.set(("keep",), 1)
        with pytest.raises(PayloadTooLarge) as too_long:
            await kv.set(("k", "x" * 3000), 1)
        assert "2048" in too_long.value.message
        with pytest.raises(PayloadTooLarge):
            await kv.set(("big",), "x" * 70_000)
        with pytest.raises(BadRequest):
            await kv.atomic().sum(("keep",), 1).commit()  # 1 is JSON, not a KvU64
        unknown = kv.atomic().set(("new",), 1)
        unknown.mutations.append({"type": "bogus", "key": ["x"]})
        with pytest.raises(BadRequest):
            await unknown.commit()
        with pytest.raises(BadRequest):
            await kv.atomic().check(("keep",), "not-a-versionstamp").commit()
        with pytest.raises(BadRequest):
            await kv.set((), 1)  # the empty key, as in Deno
        assert [(e.key, e.value) async for e in kv.list()] == [(("keep",), 1)]
        with pytest.raises(TypeError):
            await kv.get("keep")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            streams.kv("no/slashes")


async def test_expiry_deletes_the_key(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.set(("session",), "s", expire_in_ms=200)
        await kv.atomic().set(("other",), "o", expire_in_ms=60_000).commit()
        for _ in range(100):
            if (await kv.get(("session",))).value is None:
                break
            await asyncio.sleep(0.1)
        assert (await kv.get(("session",))).value is None
        assert (await kv.get(("other",))).value == "o"


async def test_the_kv_root_is_found_from_either_api_url(shared_origin: OriginProcess) -> None:
    db = db_name()
    async with Streams(shared_origin.url + "/v1/stream") as protocol, Streams(shared_origin.url) as rest:
        await protocol.kv(db).set(("a",), 1)
        assert (await rest.kv(db).get(("a",))).value == 1


def test_the_sync_client(shared_origin: OriginProcess) -> None:
    with SyncStreams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        assert kv.set(("a", 1), {"x": 1}).ok
        assert kv.get(("a", 1)).value == {"x": 1}
        entry = kv.get(("a", 1))
        assert kv.atomic().check(entry.key, entry.versionstamp).set(("a", 2), b"2").commit().ok
        assert not kv.atomic().check(entry.key, None).set(("a", 3), 3).commit().ok
        assert [(e.key, e.value) for e in kv.list(("a",), batch_size=1)] == [(("a", 1), {"x": 1}), (("a", 2), b"2")]
        assert [e.value for e in kv.get_many([("a", 2), ("a", 3)])] == [b"2", None]
        assert kv.delete(("a", 1)).ok and kv.get(("a", 1)).value is None
