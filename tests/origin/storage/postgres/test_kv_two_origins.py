"""The KV store and its queues on two origins sharing one PostgreSQL database.

Each origin keeps a KV database's state in memory, built from its change stream. With two of
them, every write batch is decided against the log as both origins wrote it (caught up first) and
refused if the other origin logged first, then decided again; reads catch up before they answer;
a lease waiting on one origin is woken by an enqueue made through the other. Real processes, real
PostgreSQL: check-and-set increments from both sides never lose an update, sums add up, and every
queue message is delivered to exactly one worker, wherever it was enqueued and leased.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import aiohttp
import pytest

from plugin_streams import KvU64, Streams
from plugin_streams.shared.aio.tasks import spawn
from tests.support.two_origins import TwoOrigins

pytestmark = pytest.mark.timeout(120)

WORKERS = 8
INCREMENTS = 25  # per worker
MESSAGES = 200
#: A lease waiting on one origin must get a message enqueued through the other within this bound.
WAKE_BOUND = 2.0


def _db() -> str:
    return f"db{random.randrange(10**9)}"


async def test_check_and_set_from_both_origins_never_loses_an_update(two_origins: TwoOrigins) -> None:
    db = _db()
    async with Streams(two_origins.a.url) as a, Streams(two_origins.b.url) as b:
        kvs = (a.kv(db), b.kv(db))
        await kvs[0].set(("n",), KvU64(0))
        read_before: list[int] = []

        async def increment(kv: Any) -> None:
            for _ in range(INCREMENTS):
                while True:
                    entry = await kv.get(("n",))
                    result = (
                        await kv.atomic()
                        .check(entry.key, entry.versionstamp)
                        .set(("n",), KvU64(entry.value.value + 1))
                        .commit()
                    )
                    if result.ok:
                        read_before.append(entry.value.value)
                        break

        await asyncio.gather(*(increment(kvs[i % 2]) for i in range(WORKERS)))
        total = WORKERS * INCREMENTS
        # Each successful commit read a distinct value: two passing the same check is a lost update.
        assert sorted(read_before) == list(range(total))
        for kv in kvs:
            assert (await kv.get(("n",))).value == KvU64(total)
        await asyncio.gather(*(kvs[i % 2].atomic().sum(("s",), KvU64(1)).commit() for i in range(total)))
        assert [(await kv.get(("s",))).value for kv in kvs] == [KvU64(total)] * 2


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def test_each_queue_message_reaches_one_worker_whichever_origin(two_origins: TwoOrigins) -> None:
    db = _db()
    bases = [f"{origin.url}/kv/api/v1/{db}/queue" for origin in two_origins.both]
    delivered: dict[str, int] = {}
    everything = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{bases[0]}/groups/g", json={"from": "-1"}) as response:
            assert response.status in (200, 201), await response.text()

        async def worker(base: str, name: str, stop: asyncio.Event) -> None:
            while not stop.is_set():
                lease = {"worker": name, "leaseMs": 30_000, "max": 10, "waitMs": 500}
                leased = await _post(session, f"{base}/groups/g/lease", lease)
                for message in leased["messages"]:
                    delivered[message["value"]] = delivered.get(message["value"], 0) + 1
                    if len(delivered) == MESSAGES:
                        everything.set()
                    await _post(session, f"{base}/groups/g/ack", {"token": message["token"]})

        stop = asyncio.Event()
        workers = [spawn(worker(bases[i % 2], f"w{i}", stop), name=f"w{i}") for i in range(4)]
        for i in range(MESSAGES):
            await _post(session, f"{bases[i % 2]}/enqueue", {"value": f"m{i}"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await everything.wait()
        stop.set()
        await asyncio.gather(*workers)
        stats_url = f"{bases[1]}/stats"
        async with session.get(stats_url) as response:
            stats = await response.json()
    assert sorted(delivered) == sorted(f"m{i}" for i in range(MESSAGES)), f"missing: {MESSAGES - len(delivered)}"
    assert [value for value, count in delivered.items() if count > 1] == []
    assert stats["groups"]["g"]["depth"] == 0, stats


async def test_a_lease_waiting_on_one_origin_is_woken_by_an_enqueue_through_the_other(
    two_origins: TwoOrigins,
) -> None:
    db = _db()
    a, b = (f"{origin.url}/kv/api/v1/{db}/queue" for origin in two_origins.both)
    async with aiohttp.ClientSession() as session:
        await _post(session, f"{a}/enqueue", {"value": "first"})  # the database exists on A
        async with session.put(f"{b}/groups/g", json={"from": "now"}) as response:
            assert response.status in (200, 201), await response.text()
        waits = []
        for i in range(5):
            lease = {"worker": "w", "leaseMs": 30_000, "max": 1, "waitMs": 10_000}
            waiting = spawn(_post(session, f"{b}/groups/g/lease", lease), name="lease")
            await asyncio.sleep(0.3)
            assert not waiting.done()
            sent = time.monotonic()
            await _post(session, f"{a}/enqueue", {"value": f"m{i}"})
            leased = await waiting
            waits.append(time.monotonic() - sent)
            assert [m["value"] for m in leased["messages"]] == [f"m{i}"]
            await _post(session, f"{b}/groups/g/ack", {"token": leased["messages"][0]["token"]})
    median, worst = sorted(waits)[2] * 1000, max(waits) * 1000
    print(f"lease on B woken by an enqueue through A: median {median:.1f} ms, max {worst:.1f} ms")
    assert max(waits) < WAKE_BOUND
