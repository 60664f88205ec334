"""KV and queue metrics at a real origin: each queue operation moves the figures it should, commits
are timed, and a live read of a change stream that hands a waiting watcher a new commit is timed
(watch lag), while catch-up reads and ordinary streams are not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from plugin_streams.shared.aio.tasks import spawn
from tests.origin.kv.conftest import KvApi
from tests.support.processes import OriginProcess
from tests.support.sse_reader import SSEReader

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
LONG_LEASE = {"leaseMs": 60_000}


async def scrape(http: aiohttp.ClientSession, origin: OriginProcess) -> Samples:
    async with http.get(f"{origin.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def group_figures(http: aiohttp.ClientSession, origin: OriginProcess, db: str, group: str) -> dict[str, float]:
    samples = await scrape(http, origin)
    names = ("depth", "in_flight", "redeliveries_total", "acked_total", "dead_letters", "oldest_age_seconds")
    names += ("oldest_due_seconds",)
    return {name: value(samples, f"ds_kv_queue_{name}", db=db, group=group) for name in names}


async def test_queue_figures_follow_enqueue_lease_ack_nack_and_the_dlq(
    kv: KvApi, kv_origin: OriginProcess, http: aiohttp.ClientSession
) -> None:
    await kv.ok("PUT", "/queue/groups/g", body={"from": "-1"})
    retried = (await kv.enqueue("retried", backoffSchedule=[0]))["id"]  # two attempts
    await kv.enqueue("poison", backoffSchedule=[])  # one attempt
    await kv.enqueue("fine")
    figures = await group_figures(http, kv_origin, kv.db, "g")
    assert (figures["depth"], figures["in_flight"], figures["dead_letters"]) == (3, 0, 0)

    leased = {m["value"]: m for m in await kv.lease("g", max=3, **LONG_LEASE)}
    assert set(leased) == {"retried", "poison", "fine"}
    figures = await group_figures(http, kv_origin, kv.db, "g")
    assert (figures["depth"], figures["in_flight"], figures["acked_total"]) == (0, 3, 0)

    await kv.ok("POST", "/queue/groups/g/ack", body={"token": leased["fine"]["token"]})
    await kv.ok("POST", "/queue/groups/g/nack", body={"token": leased["retried"]["token"], "error": "try again"})
    await kv.ok("POST", "/queue/groups/g/nack", body={"token": leased["poison"]["token"], "error": "boom"})
    figures = await group_figures(http, kv_origin, kv.db, "g")
    assert figures == {
        "depth": 1,
        "in_flight": 0,
        "redeliveries_total": 0,
        "acked_total": 1,
        "dead_letters": 1,  # its only attempt failed
        "oldest_age_seconds": figures["oldest_age_seconds"],
        "oldest_due_seconds": figures["oldest_due_seconds"],  # "retried" was due again at once
    }
    assert 0 <= figures["oldest_age_seconds"] < 30

    again = await kv.lease("g", **LONG_LEASE)
    assert [m["id"] for m in again] == [retried] and again[0]["attempt"] == 2
    await kv.ok("POST", "/queue/groups/g/term", body={"token": again[0]["token"], "error": "give up"})
    figures = await group_figures(http, kv_origin, kv.db, "g")
    assert figures == {
        "depth": 0,
        "in_flight": 0,
        "redeliveries_total": 1,
        "acked_total": 1,
        "dead_letters": 2,
        "oldest_age_seconds": 0,  # nothing is owed an outcome any more
        "oldest_due_seconds": 0,
    }

    await kv.ok("POST", "/queue/groups/g/dlq/redrive", body={})
    figures = await group_figures(http, kv_origin, kv.db, "g")
    assert (figures["depth"], figures["dead_letters"]) == (2, 0)


async def test_the_oldest_age_grows_while_a_message_waits(
    kv: KvApi, kv_origin: OriginProcess, http: aiohttp.ClientSession
) -> None:
    await kv.ok("PUT", "/queue/groups/slow", body={"from": "-1"})
    await kv.enqueue({"job": 1})
    await asyncio.sleep(1.2)
    await kv.enqueue({"job": "later"}, delay=600_000)
    figures = await group_figures(http, kv_origin, kv.db, "slow")
    assert figures["depth"] == 2
    assert 1.1 <= figures["oldest_age_seconds"] < 30
    assert 1.1 <= figures["oldest_due_seconds"] < 30  # the first job waits for a consumer

    await kv.ok("PUT", "/queue/groups/fresh", body={"from": "now"})
    await kv.enqueue({"job": "tomorrow"}, delay=600_000)
    figures = await group_figures(http, kv_origin, kv.db, "fresh")
    assert (figures["depth"], figures["oldest_due_seconds"]) == (1, 0)  # delayed: nobody is late


async def test_keys_commits_log_and_commit_latency(
    kv: KvApi, kv_origin: OriginProcess, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, kv_origin)
    for i in range(5):
        await kv.set(["user", i], {"n": i})
    await kv.delete(["user", 0])
    status, _ = await kv.atomic([{"type": "sum", "key": ["count"], "value": {"$u64": "3"}}])
    assert status == 200
    after = await scrape(http, kv_origin)
    assert value(after, "ds_kv_keys", db=kv.db) == 5  # user 1..4 and count
    assert value(after, "ds_kv_commits_total", db=kv.db) == len(await kv.events()) == 7
    tail = await kv.tail()
    assert tail is not None and value(after, "ds_kv_log_bytes", db=kv.db) == int(tail.split("_")[1])
    timed = value(after, "ds_kv_commit_seconds_count") - value(before, "ds_kv_commit_seconds_count")
    assert timed >= 7  # other tests of the module may commit meanwhile, never fewer
    spent = value(after, "ds_kv_commit_seconds_sum") - value(before, "ds_kv_commit_seconds_sum")
    assert 0 < spent < 7 * 5
    assert value(after, "ds_kv_commit_batch_events_count") > value(before, "ds_kv_commit_batch_events_count")
    assert value(after, "ds_kv_databases") >= 1


async def deliveries(http: aiohttp.ClientSession, origin: OriginProcess, mode: str) -> tuple[float, float]:
    samples = await scrape(http, origin)
    return (
        value(samples, "ds_kv_watch_delivery_seconds_count", mode=mode),
        value(samples, "ds_kv_watch_delivery_seconds_sum", mode=mode),
    )


async def test_a_waiting_long_poll_watcher_is_timed_and_a_catch_up_read_is_not(
    kv: KvApi, kv_origin: OriginProcess, http: aiohttp.ClientSession
) -> None:
    await kv.set(["a"], 1)
    tail = await kv.tail()
    stream = f"{kv_origin.url}/v1/stream/__kv/{kv.db}"
    count, total = await deliveries(http, kv_origin, "long_poll")

    async def watch() -> list[Any]:
        async with http.get(stream, params={"offset": tail, "live": "long-poll"}) as response:
            assert response.status == 200
            events: list[Any] = json.loads(await response.read())
            return events

    waiting = spawn(watch(), name="kv-watcher")
    await asyncio.sleep(0.3)  # the long-poll waits at the tail
    await kv.set(["b"], 2)
    async with asyncio.timeout(10):
        events = await waiting
    assert [change["key"] for event in events for change in event["changes"]] == [["b"]]
    count_after, total_after = await deliveries(http, kv_origin, "long_poll")
    assert count_after == count + 1
    assert 0 <= total_after - total < 1  # the commit reached its waiting watcher within a second

    async with http.get(stream, params={"offset": "-1", "live": "long-poll"}) as response:
        assert response.status == 200  # answered at once from what is there: a catch-up
    assert (await deliveries(http, kv_origin, "long_poll"))[0] == count_after


async def test_an_sse_watcher_is_timed_for_new_commits_only(
    kv: KvApi, kv_origin: OriginProcess, http: aiohttp.ClientSession
) -> None:
    await kv.set(["a"], 1)
    count, _ = await deliveries(http, kv_origin, "sse")
    stream = f"{kv_origin.url}/v1/stream/__kv/{kv.db}"
    async with http.get(stream, params={"offset": "-1", "live": "sse"}) as response:
        reader = SSEReader(response)
        assert await reader.first("data") is not None  # the catch-up: not timed
        await reader.first("control")
        await asyncio.sleep(0.2)
        assert (await deliveries(http, kv_origin, "sse"))[0] == count
        await kv.set(["b"], 2)
        data = await reader.first("data")
        assert data is not None and '"b"' in data
    assert (await deliveries(http, kv_origin, "sse"))[0] == count + 1


async def test_ordinary_streams_are_not_timed(kv_origin: OriginProcess, http: aiohttp.ClientSession) -> None:
    """Even a message laid out exactly as a change event (naming its own end offset) is not timed
    outside `__kv/`: the path decides, not the bytes."""
    stream = f"{kv_origin.url}/v1/stream/plain-{id(http)}"
    json_type = {"Content-Type": "application/json"}
    async with http.put(stream, headers=json_type) as response:
        assert response.status == 201
    async with http.post(stream, data=b'{"first":1}', headers=json_type) as response:
        generation, position = response.headers["Stream-Next-Offset"].split("_")
    lookalike = '{"versionstamp":"00000000000000000000","offset":"%s","at":1,"changes":[]}'
    end = f"{generation}_{int(position) + len(lookalike % ('0' * 33)) + 1:016d}"  # stored with a comma
    before = await scrape(http, kv_origin)

    async def watch() -> None:
        async with http.get(stream, params={"offset": "now", "live": "long-poll"}) as response:
            assert response.status == 200

    waiting = spawn(watch(), name="plain-watcher")
    await asyncio.sleep(0.3)
    async with http.post(stream, data=(lookalike % end).encode(), headers=json_type) as response:
        assert response.headers["Stream-Next-Offset"] == end  # the lookalike names its own end
    async with asyncio.timeout(10):
        await waiting
    after = await scrape(http, kv_origin)
    for mode in ("long_poll", "sse"):
        name = "ds_kv_watch_delivery_seconds_count"
        assert value(after, name, mode=mode) == value(before, name, mode=mode)
