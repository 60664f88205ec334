"""A KV database across origin restarts on the same data directory: after a graceful SIGTERM the
state (keys, versionstamps, queue, groups, leases, DLQ, change stream) is identical; after a SIGKILL
in the middle of concurrent commits every acknowledged commit is present and the state is the one
the change stream describes.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp

from plugin_streams.shared.aio.tasks import spawn
from tests.origin.kv.conftest import KvApi
from tests.support.processes import OriginProcess

#: Errors a client sees when the server dies under it.
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


async def view(kv: KvApi) -> dict[str, Any]:
    """Everything a client can read of a database (queue ages left out: they grow by themselves)."""
    stats = (await kv.ok("GET", "/queue/stats"))["groups"]
    return {
        "entries": await kv.list_all(1000, prefix=[]),
        "groups": (await kv.ok("GET", "/queue/groups"))["groups"],
        "stats": {g: {k: v for k, v in s.items() if k != "oldestAgeMs"} for g, s in stats.items()},
        "dlq": {g: await kv.ok("GET", f"/queue/groups/{g}/dlq") for g in stats},
        "events": await kv.events(),
        "tail": await kv.tail(),
    }


async def build_state(kv: KvApi) -> int:
    """Keys of every kind, a KvU64, a key with a far expiry, queue messages leased, acked and dead."""
    await kv.atomic([{"type": "set", "key": ["k", {"$bigint": str(i)}], "value": {"i": i}} for i in range(50)])
    await kv.atomic([{"type": "sum", "key": ["total"], "value": {"$u64": "41"}}])
    await kv.atomic([{"type": "sum", "key": ["total"], "value": 1}])
    await kv.set(["later"], "expires in an hour", expire_in=3_600_000)
    await kv.delete(["k", {"$bigint": "7"}])
    for i in range(4):
        await kv.enqueue({"job": i}, backoffSchedule=[0])
    await kv.ok("PUT", "/queue/groups/other", body={"from": "now"})
    done, dead, held = await kv.lease("g", max=3, leaseMs=600_000)
    await kv.ok("POST", "/queue/groups/g/ack", body={"token": done["token"]})
    await kv.ok("POST", "/queue/groups/g/term", body={"token": dead["token"], "error": "bad"})
    token: int = held["token"]
    return token


async def test_a_graceful_restart_keeps_the_state_identical(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data = tmp_path / "data"
    with OriginProcess(data) as first:
        kv = KvApi(http, first.url, "restart")
        held_token = await build_state(kv)
        before = await view(kv)
        assert first.stop() == 0
    with OriginProcess(data) as second:
        kv = KvApi(http, second.url, "restart")
        assert await view(kv) == before
        # The lease held before the restart is still that worker's, and versionstamps keep rising.
        assert (await kv.call("POST", "/queue/groups/g/ack", body={"token": held_token}))[0] == 200
        receipt = await kv.set(["after"], 1)
        assert receipt["versionstamp"] > max(e["versionstamp"] for e in before["events"])


async def test_sigkill_loses_no_acknowledged_commit(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data = tmp_path / "data"
    acknowledged: dict[str, tuple[int, str]] = {}  # key -> (value, versionstamp)
    sums = 0
    rng = random.Random(1414)

    async def writer(kv: KvApi, w: int) -> None:
        nonlocal sums
        for i in range(10_000):
            key = f"{w}-{i}"
            mutations = [
                {"type": "set", "key": ["w", key], "value": i},
                {"type": "sum", "key": ["sum"], "value": {"$u64": "1"}},
            ]
            try:
                status, receipt = await kv.atomic(mutations)
            except CONNECTION_ERRORS:
                return
            if status != 200:
                return  # the server is going down (503) or gone
            acknowledged[key] = (i, receipt["versionstamp"])
            sums += 1

    origin = OriginProcess(data).start()
    try:
        kv = KvApi(http, origin.url, "crash")
        writers = [spawn(writer(kv, w), name=f"writer-{w}") for w in range(8)]
        await asyncio.sleep(0.8 + rng.random() * 0.4)
        origin.kill()
        await asyncio.gather(*writers)
    finally:
        origin.kill()
    assert len(acknowledged) > 50, "the writers hardly wrote before the kill"
    with OriginProcess(data) as again:
        kv = KvApi(http, again.url, "crash")
        entries = {e["key"][1]: e for e in await kv.list_all(1000, prefix=["w"])}
        for key, (value, stamp) in acknowledged.items():
            assert key in entries, f"acknowledged commit {key} ({stamp}) lost"
            assert (entries[key]["value"], entries[key]["versionstamp"]) == (value, stamp)
        # Commits may have been logged whose answer never arrived, never the other way round.
        total = int((await kv.value(["sum"]))["$u64"])
        print(f"SIGKILL under 8 writers: {sums} commits acknowledged, {total} logged, 0 lost")
        assert sums <= total == len(entries)
        events = await kv.events()
        assert len(events) == total
        assert [e["versionstamp"] for e in events] == sorted(e["versionstamp"] for e in events)
        logged = {
            c["key"][1]: (c["value"], e["versionstamp"]) for e in events for c in e["changes"] if c["key"][0] == "w"
        }
        assert logged == {key: (e["value"], e["versionstamp"]) for key, e in entries.items()}
        receipt = await kv.set(["after"], 1)
        assert receipt["versionstamp"] > events[-1]["versionstamp"]
