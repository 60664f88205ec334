"""The KV HTTP contract over a real origin: keys, get-many, list, atomic, versionstamps, checks,
sum/min/max on KvU64, tuple key order and expiry (Deno KV's semantics, README "KV store").
"""

from __future__ import annotations

import asyncio
import base64
import json
import random

from tests.origin.kv.conftest import KvApi, versionstamp_offset

U64 = 2**64


def u64(n: int) -> dict[str, str]:
    return {"$u64": str(n)}


def bigint(n: int) -> dict[str, str]:
    return {"$bigint": str(n)}


def b64(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.urlsafe_b64encode(data).decode().rstrip("=")}


# ---- keys --------------------------------------------------------------------------------------


async def test_a_database_never_written_reads_empty(kv: KvApi) -> None:
    got = await kv.get(["nothing"])
    assert got == {"key": ["nothing"], "value": None, "versionstamp": None, "offset": "-1"}
    assert await kv.list(prefix=[]) == {"entries": [], "cursor": None, "offset": "-1"}
    status, many = await kv.call("POST", "/get-many", body={"keys": [["a"], ["b"]]})
    assert status == 200 and [e["value"] for e in many["entries"]] == [None, None]
    assert await kv.tail() is None  # reading allocated no change stream


async def test_values_round_trip_in_their_wire_forms(kv: KvApi) -> None:
    values = [
        {"nested": [1, 2.5, None, True, "x"]},
        "text",
        -17,
        None,
        b64(b"\x00\xffbinary"),
        u64(U64 - 1),
        {"$json": {"$u64": "not a marker"}},
    ]
    for i, value in enumerate(values):
        receipt = await kv.set(["v", bigint(i)], value)
        assert receipt["ok"] is True
        got = await kv.get(["v", bigint(i)])
        assert got["value"] == value
        assert got["versionstamp"] == receipt["versionstamp"]
        assert got["offset"] == receipt["offset"]


async def test_delete_removes_and_is_a_commit(kv: KvApi) -> None:
    first = await kv.set(["d"], 1)
    gone = await kv.delete(["d"])
    assert gone["versionstamp"] > first["versionstamp"]
    assert await kv.get(["d"]) == {"key": ["d"], "value": None, "versionstamp": None, "offset": gone["offset"]}
    events = await kv.events()
    assert events[-1]["changes"] == [{"key": ["d"], "op": "delete"}]


async def test_get_many_answers_in_the_order_asked(kv: KvApi) -> None:
    await kv.set(["m", "b"], "B")
    receipt = await kv.set(["m", "a"], "A")
    status, answer = await kv.call(
        "POST", "/get-many", body={"keys": [["m", "a"], ["m", "zz"], ["m", "b"], ["m", "a"]]}
    )
    assert status == 200
    assert [e["value"] for e in answer["entries"]] == ["A", None, "B", "A"]
    assert [e["key"] for e in answer["entries"]] == [["m", "a"], ["m", "zz"], ["m", "b"], ["m", "a"]]
    assert answer["entries"][0]["versionstamp"] == receipt["versionstamp"]
    assert answer["offset"] == receipt["offset"]


# ---- atomic, versionstamps and checks ------------------------------------------------------------


async def test_versionstamps_rise_and_a_commit_shares_one(kv: KvApi) -> None:
    stamps = []
    for i in range(5):
        status, receipt = await kv.atomic(
            [
                {"type": "set", "key": ["c", bigint(i), "x"], "value": i},
                {"type": "set", "key": ["c", bigint(i), "y"], "value": -i},
            ]
        )
        assert status == 200 and receipt["ok"] is True
        stamps.append(receipt)
        entries = (await kv.list(prefix=["c", bigint(i)]))["entries"]
        assert [e["versionstamp"] for e in entries] == [receipt["versionstamp"]] * 2
    assert [r["versionstamp"] for r in stamps] == sorted({r["versionstamp"] for r in stamps})
    events = await kv.events()
    assert [e["versionstamp"] for e in events] == [r["versionstamp"] for r in stamps]
    assert [e["offset"] for e in events] == [r["offset"] for r in stamps]
    for receipt in stamps:
        assert versionstamp_offset(receipt["versionstamp"]) == receipt["offset"]


async def test_the_offset_after_a_commit_resumes_with_the_next_commit_only(kv: KvApi) -> None:
    first = await kv.set(["r", "1"], 1)
    second = await kv.set(["r", "2"], 2)
    third = await kv.set(["r", "3"], 3)
    after_first = await kv.events(versionstamp_offset(first["versionstamp"]))
    assert [e["versionstamp"] for e in after_first] == [second["versionstamp"], third["versionstamp"]]
    assert await kv.events(third["offset"]) == []


async def test_check_null_means_must_not_exist(kv: KvApi) -> None:
    create = [{"type": "set", "key": ["once"], "value": "first"}]
    status, receipt = await kv.atomic(create, checks=[{"key": ["once"], "versionstamp": None}])
    assert status == 200 and receipt["ok"] is True
    tail = await kv.tail()
    status, answer = await kv.atomic(
        [{"type": "set", "key": ["once"], "value": "second"}], checks=[{"key": ["once"], "versionstamp": None}]
    )
    assert (status, answer) == (409, {"ok": False})
    assert await kv.value(["once"]) == "first"
    assert await kv.tail() == tail


async def test_a_stale_versionstamp_fails_with_409_and_changes_nothing(kv: KvApi) -> None:
    old = await kv.set(["acct"], 10)
    new = await kv.set(["acct"], 20)
    tail = await kv.tail()
    stale = [{"key": ["acct"], "versionstamp": old["versionstamp"]}, {"key": ["other"], "versionstamp": None}]
    mutations = [{"type": "set", "key": ["acct"], "value": 30}, {"type": "set", "key": ["other"], "value": 1}]
    assert await kv.atomic(mutations, checks=stale) == (409, {"ok": False})
    assert await kv.value(["acct"]) == 20 and await kv.value(["other"]) is None
    assert await kv.tail() == tail
    current = [{"key": ["acct"], "versionstamp": new["versionstamp"]}, {"key": ["other"], "versionstamp": None}]
    status, receipt = await kv.atomic(mutations, checks=current)
    assert status == 200 and receipt["versionstamp"] > new["versionstamp"]
    assert await kv.value(["acct"]) == 30 and await kv.value(["other"]) == 1


async def test_concurrent_check_and_set_lets_exactly_one_win(kv: KvApi) -> None:
    start = await kv.set(["lock"], "free")
    attempts = [
        kv.atomic(
            [{"type": "set", "key": ["lock"], "value": f"owner-{i}"}],
            checks=[{"key": ["lock"], "versionstamp": start["versionstamp"]}],
        )
        for i in range(20)
    ]
    outcomes = await asyncio.gather(*attempts)
    winners = [i for i, (status, _) in enumerate(outcomes) if status == 200]
    assert len(winners) == 1
    assert all(answer == {"ok": False} for status, answer in outcomes if status != 200)
    assert await kv.value(["lock"]) == f"owner-{winners[0]}"


# ---- sum / min / max ---------------------------------------------------------------------------


async def test_sum_wraps_modulo_2_to_the_64(kv: KvApi) -> None:
    await kv.atomic([{"type": "sum", "key": ["n"], "value": u64(U64 - 2)}])  # absent: takes the operand
    assert await kv.value(["n"]) == u64(U64 - 2)
    status, _ = await kv.atomic([{"type": "sum", "key": ["n"], "value": u64(5)}])
    assert status == 200
    assert await kv.value(["n"]) == u64(3)
    assert (await kv.events())[-1]["changes"] == [{"key": ["n"], "op": "set", "value": u64(3), "expireAt": None}]
    status, _ = await kv.atomic([{"type": "sum", "key": ["n"], "value": 4}])  # a plain integer operand
    assert status == 200 and await kv.value(["n"]) == u64(7)


async def test_min_and_max_keep_the_smaller_and_the_larger(kv: KvApi) -> None:
    await kv.set(["lo"], u64(50))
    await kv.set(["hi"], u64(50))
    for operand in (70, 20, 60):
        status, _ = await kv.atomic(
            [
                {"type": "min", "key": ["lo"], "value": u64(operand)},
                {"type": "max", "key": ["hi"], "value": u64(operand)},
            ]
        )
        assert status == 200
    assert await kv.value(["lo"]) == u64(20)
    assert await kv.value(["hi"]) == u64(70)
    await kv.atomic([{"type": "max", "key": ["fresh"], "value": u64(9)}])
    assert await kv.value(["fresh"]) == u64(9)


async def test_sum_on_a_value_that_is_not_a_kvu64_is_a_400_and_changes_nothing(kv: KvApi) -> None:
    await kv.set(["plain"], 5)
    tail = await kv.tail()
    for op in ("sum", "min", "max"):
        status, answer = await kv.atomic(
            [{"type": "set", "key": ["side"], "value": 1}, {"type": op, "key": ["plain"], "value": u64(1)}]
        )
        assert status == 400, (op, answer)
        assert "KvU64" in answer["error"]["message"]
    assert await kv.value(["plain"]) == 5
    assert await kv.value(["side"]) is None
    assert await kv.tail() == tail


# ---- list ----------------------------------------------------------------------------------------


async def _fill(kv: KvApi, n: int) -> list[list[object]]:
    keys = [["p", bigint(i)] for i in range(n)]
    mutations = [{"type": "set", "key": key, "value": i} for i, key in enumerate(keys)]
    status, _ = await kv.atomic([*mutations, {"type": "set", "key": ["p"], "value": "prefix itself"}])
    assert status == 200
    await kv.set(["q", bigint(0)], "outside")
    return keys


async def test_list_prefix_excludes_the_prefix_key(kv: KvApi) -> None:
    keys = await _fill(kv, 5)
    answer = await kv.list(prefix=["p"])
    assert [e["key"] for e in answer["entries"]] == keys
    assert answer["cursor"] is None


async def test_list_start_end_reverse_and_limit(kv: KvApi) -> None:
    keys = await _fill(kv, 10)
    between = await kv.list(start=keys[2], end=keys[6])  # start inclusive, end exclusive
    assert [e["key"] for e in between["entries"]] == keys[2:6]
    backwards = await kv.list(prefix=["p"], reverse="true", limit=3)
    assert [e["key"] for e in backwards["entries"]] == keys[::-1][:3]
    assert backwards["cursor"] is not None
    bounded = await kv.list(prefix=["p"], start=keys[7])
    assert [e["key"] for e in bounded["entries"]] == keys[7:]


async def test_list_cursor_pages_through_exactly(kv: KvApi) -> None:
    keys = await _fill(kv, 23)
    for reverse in ("false", "true"):
        for page in (1, 4, 23, 100):
            entries = await kv.list_all(page, prefix=["p"], reverse=reverse)
            expected = keys if reverse == "false" else keys[::-1]
            assert [e["key"] for e in entries] == expected, (reverse, page)


async def test_list_cursor_continues_exactly_across_writes(kv: KvApi) -> None:
    keys = await _fill(kv, 10)
    first = await kv.list(prefix=["p"], limit=4)
    assert [e["key"] for e in first["entries"]] == keys[:4]
    # Writes before and after the cursor: the next page starts right after the last key it gave.
    await kv.delete(keys[4])
    await kv.set(keys[1], "changed behind the cursor")
    await kv.set(["p", bigint(3), "late"], "just after the cursor")
    rest = await kv.list(prefix=["p"], limit=100, cursor=first["cursor"])
    assert [e["key"] for e in rest["entries"]] == [["p", bigint(3), "late"], *keys[5:]]


# ---- tuple key order -------------------------------------------------------------------------------


async def test_tuple_keys_order_like_the_tuple_layer(kv: KvApi) -> None:
    ordered: list[object] = [
        b64(b""),
        b64(b"\x00"),
        b64(b"\x01\x02"),
        b64(b"\xff"),
        "",
        "A",
        "a",
        "a\x00",
        "ab",
        "é",
        bigint(-(2**70)),
        bigint(-1),
        bigint(0),
        bigint(1),
        bigint(2**64 + 1),
        {"$number": "-Infinity"},
        -1.5,
        0.0,
        0.25,
        3.0,
        1e300,
        {"$number": "Infinity"},
        False,
        True,
    ]
    shuffled = list(ordered)
    random.Random(14).shuffle(shuffled)
    status, _ = await kv.atomic([{"type": "set", "key": ["o", part], "value": i} for i, part in enumerate(shuffled)])
    assert status == 200
    listed = [e["key"][1] for e in (await kv.list(prefix=["o"]))["entries"]]
    assert listed == ordered
    reverse = [e["key"][1] for e in (await kv.list(prefix=["o"], reverse="true"))["entries"]]
    assert reverse == ordered[::-1]


async def test_a_shorter_key_sorts_before_its_extensions(kv: KvApi) -> None:
    keys = [["s", "a"], ["s", "a", "z"], ["s", "a", bigint(0)], ["s", "b"]]  # str < int in a part
    for key in reversed(keys):
        await kv.set(key, json.dumps(key))
    assert [e["key"] for e in (await kv.list(prefix=["s"]))["entries"]] == keys


# ---- expiry ------------------------------------------------------------------------------------------


async def test_an_expired_key_disappears_and_the_sweeper_logs_its_delete(kv: KvApi) -> None:
    receipt = await kv.set(["tmp"], "soon gone", expire_in=300)
    status, _ = await kv.atomic([{"type": "set", "key": ["tmp2"], "value": 2, "expireIn": 300}])
    assert status == 200
    await kv.set(["keep"], "stays")
    set_event = (await kv.events())[0]
    assert set_event["changes"][0]["expireAt"] == set_event["at"] + 300
    assert await kv.value(["tmp"]) == "soon gone"
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        deletes = [
            change
            for event in await kv.events(receipt["offset"])
            for change in event["changes"]
            if change["op"] == "delete"
        ]
        if len(deletes) == 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sorted(d["key"] for d in deletes) == [["tmp"], ["tmp2"]]
    assert all(d.get("cause") == "expired" for d in deletes)
    assert await kv.value(["tmp"]) is None and await kv.value(["tmp2"]) is None
    assert await kv.value(["keep"]) == "stays"
    assert [e["key"] for e in (await kv.list(prefix=[]))["entries"]] == [["keep"]]


async def test_an_expired_key_reads_as_absent_before_the_sweep(kv: KvApi) -> None:
    await kv.set(["brief"], 1, expire_in=1)
    await asyncio.sleep(0.02)
    assert await kv.value(["brief"]) is None
    status, _ = await kv.atomic(
        [{"type": "set", "key": ["brief"], "value": 2}], checks=[{"key": ["brief"], "versionstamp": None}]
    )
    assert status == 200
