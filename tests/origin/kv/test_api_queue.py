"""The queue routes over HTTP: enqueue, groups, leases (waiting, fenced), ack (with an atomic commit
in the same event), nack with backoff, term and exhausted attempts to the DLQ (with
keysIfUndelivered set in that same step), extend, reset, redrive and stats.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from plugin_streams.shared.aio.tasks import spawn
from tests.origin.kv.conftest import KvApi

MIN_LEASE_MS = 1000


async def answer(kv: KvApi, group: str, verb: str, **body: Any) -> tuple[int, Any]:
    return await kv.call("POST", f"/queue/groups/{group}/{verb}", body=body)


async def dlq(kv: KvApi, group: str, **params: str) -> dict[str, Any]:
    found: dict[str, Any] = await kv.ok("GET", f"/queue/groups/{group}/dlq", params=params)
    return found


async def until(probe: Any, seconds: float = 5.0) -> Any:
    """The first truthy result of `probe()` within `seconds` (the server's sweeps run every 0.25 s)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_enqueue_ids_sort_in_enqueue_order(kv: KvApi) -> None:
    first = await kv.enqueue({"n": 1})
    status, commit = await kv.atomic(
        [{"type": "enqueue", "value": 2}, {"type": "set", "key": ["k"], "value": 1}, {"type": "enqueue", "value": 3}]
    )
    assert status == 200
    last = await kv.enqueue(4)
    ids = [first["id"], *commit["enqueued"], last["id"]]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert first["offset"] in first["id"]  # an id names the commit that enqueued it
    messages = await kv.lease("g", max=10)
    assert [m["id"] for m in messages] == ids
    assert [m["value"] for m in messages] == [{"n": 1}, 2, 3, 4]
    assert all(m["attempt"] == 1 and m["maxAttempts"] == 6 for m in messages)  # Deno's default schedule


async def test_a_waiting_lease_wakes_on_enqueue(kv: KvApi) -> None:
    await kv.ok("PUT", "/queue/groups/g", body={"from": "-1"})
    lease = spawn(kv.lease("g", waitMs=10_000), name="waiting-lease")
    await asyncio.sleep(0.3)
    assert not lease.done()
    enqueued = time.monotonic()
    message = await kv.enqueue("wake up")
    got = await lease
    assert time.monotonic() - enqueued < 2
    assert [m["id"] for m in got] == [message["id"]]


async def test_a_lease_waits_at_most_wait_ms(kv: KvApi) -> None:
    started = time.monotonic()
    assert await kv.lease("empty", waitMs=400) == []
    assert 0.35 < time.monotonic() - started < 3


async def test_ack_finishes_a_message(kv: KvApi) -> None:
    await kv.enqueue("job")
    [message] = await kv.lease("g")
    status, receipt = await answer(kv, "g", "ack", token=message["token"])
    assert status == 200 and receipt["ok"] is True
    assert await kv.lease("g") == []
    stats = await kv.stats("g")
    assert (stats["depth"], stats["inFlight"], stats["dlq"]) == (0, 0, 0)
    status, again = await answer(kv, "g", "ack", token=message["token"])
    assert status == 409 and again["error"]["code"] == "FENCED"


async def test_ack_with_an_atomic_commits_in_one_event(kv: KvApi) -> None:
    await kv.enqueue({"order": 7})
    [message] = await kv.lease("g")
    effect = {
        "checks": [{"key": ["done", message["id"]], "versionstamp": None}],
        "mutations": [
            {"type": "set", "key": ["done", message["id"]], "value": True},
            {"type": "sum", "key": ["count"], "value": {"$u64": "1"}},
        ],
    }
    status, receipt = await answer(kv, "g", "ack", token=message["token"], atomic=effect)
    assert status == 200
    event = (await kv.events())[-1]
    assert event["versionstamp"] == receipt["versionstamp"]
    assert [c["key"] for c in event["changes"]] == [["done", message["id"]], ["count"]]
    assert event["queue"], "the ack is in the same event as its commit"
    assert await kv.value(["count"]) == {"$u64": "1"}
    assert (await kv.stats("g"))["depth"] == 0


async def test_ack_whose_checks_fail_leaves_the_message_leased(kv: KvApi) -> None:
    await kv.set(["claimed"], "by someone")
    await kv.enqueue("job")
    [message] = await kv.lease("g", leaseMs=30_000)
    tail = await kv.tail()
    effect = {"checks": [{"key": ["claimed"], "versionstamp": None}], "mutations": [{"type": "delete", "key": ["x"]}]}
    assert await answer(kv, "g", "ack", token=message["token"], atomic=effect) == (409, {"ok": False})
    assert await kv.tail() == tail
    assert (await kv.stats("g"))["inFlight"] == 1
    status, _ = await answer(kv, "g", "ack", token=message["token"])
    assert status == 200


async def test_nack_retries_after_the_backoff(kv: KvApi) -> None:
    await kv.enqueue("flaky", backoffSchedule=[600, 600])
    [first] = await kv.lease("g")
    nacked = time.monotonic()
    status, receipt = await answer(kv, "g", "nack", token=first["token"], error="boom")
    assert status == 200 and receipt["deadLettered"] is False
    assert await kv.lease("g") == []  # not before its backoff
    [second] = await kv.lease("g", waitMs=5000)
    assert time.monotonic() - nacked >= 0.5
    assert (second["id"], second["attempt"], second["maxAttempts"]) == (first["id"], 2, 3)
    assert second["token"] != first["token"]
    assert (await kv.stats("g"))["redeliveries"] >= 1


async def test_nack_after_the_last_attempt_dead_letters(kv: KvApi) -> None:
    message = await kv.enqueue("once", backoffSchedule=[])
    [leased] = await kv.lease("g")
    assert leased["maxAttempts"] == 1
    status, receipt = await answer(kv, "g", "nack", token=leased["token"], error="gave up")
    assert status == 200 and receipt["deadLettered"] is True
    [entry] = (await dlq(kv, "g"))["entries"]
    assert (entry["id"], entry["reason"], entry["lastError"], entry["attempts"]) == (
        message["id"],
        "attempts_exhausted",
        "gave up",
        1,
    )


async def test_term_sends_straight_to_the_dlq_with_the_original_offset(kv: KvApi) -> None:
    message = await kv.enqueue({"poison": True})
    [leased] = await kv.lease("g")
    status, _ = await answer(kv, "g", "term", token=leased["token"], error="cannot parse")
    assert status == 200
    page = await dlq(kv, "g")
    assert page["next"] is None
    [entry] = page["entries"]
    assert entry["id"] == message["id"]
    assert entry["offset"] == message["offset"]
    assert (entry["reason"], entry["lastError"], entry["attempts"], entry["value"]) == (
        "term",
        "cannot parse",
        1,
        {"poison": True},
    )
    assert (await kv.stats("g"))["dlq"] == 1 and await kv.lease("g") == []


async def test_lease_expiry_exhausts_attempts_into_the_dlq_and_sets_keys_if_undelivered(kv: KvApi) -> None:
    value = {"payload": "never processed"}
    message = await kv.enqueue(value, backoffSchedule=[0], keysIfUndelivered=[["lost", "a"], ["lost", "b"]])
    for attempt in (1, 2):
        [leased] = await kv.lease("g", leaseMs=MIN_LEASE_MS, waitMs=3000)
        assert leased["attempt"] == attempt  # the worker "crashes": its lease lapses
    entries = await until(lambda: _dead_entries(kv))
    assert [(e["id"], e["reason"], e["attempts"]) for e in entries] == [(message["id"], "attempts_exhausted", 2)]
    assert await kv.value(["lost", "a"]) == value and await kv.value(["lost", "b"]) == value
    dead_event = next(e for e in await kv.events() if any(c["key"] == ["lost", "a"] for c in e["changes"]))
    assert dead_event["queue"], "the keys are set in the same event as the move to the DLQ"


async def _dead_entries(kv: KvApi) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await dlq(kv, "g"))["entries"]
    return entries


async def test_a_stale_token_is_fenced_and_changes_nothing(kv: KvApi) -> None:
    await kv.enqueue("contested", backoffSchedule=[0, 0])
    [old] = await kv.lease("g", leaseMs=MIN_LEASE_MS)
    [new] = await kv.lease("g", leaseMs=30_000, worker="w2", waitMs=5000)  # after the first lease lapsed
    assert new["id"] == old["id"] and new["attempt"] == 2
    tail = await kv.tail()
    effect = {"checks": [], "mutations": [{"type": "set", "key": ["effect"], "value": "stale"}]}
    for verb, body in (
        ("ack", {"token": old["token"], "atomic": effect}),
        ("nack", {"token": old["token"], "error": "late"}),
        ("extend", {"token": old["token"], "leaseMs": 5000}),
        ("term", {"token": old["token"], "error": "late"}),
    ):
        status, refused = await answer(kv, "g", verb, **body)
        assert status == 409 and refused["error"]["code"] == "FENCED", (verb, refused)
    assert await kv.tail() == tail
    assert await kv.value(["effect"]) is None
    effect["mutations"][0]["value"] = "fresh"
    status, _ = await answer(kv, "g", "ack", token=new["token"], atomic=effect)
    assert status == 200 and await kv.value(["effect"]) == "fresh"


async def test_extend_keeps_a_lease_past_its_first_expiry(kv: KvApi) -> None:
    await kv.enqueue("slow job", backoffSchedule=[0])
    [leased] = await kv.lease("g", leaseMs=MIN_LEASE_MS)
    status, receipt = await answer(kv, "g", "extend", token=leased["token"], leaseMs=5000)
    assert status == 200 and receipt["leaseExpiresAt"] > leased["leaseExpiresAt"]
    await asyncio.sleep(1.4)
    assert await kv.lease("g", worker="w2") == []  # still held
    status, _ = await answer(kv, "g", "ack", token=leased["token"])
    assert status == 200


async def test_reset_replays_and_fences_outstanding_leases(kv: KvApi) -> None:
    ids = [(await kv.enqueue(i))["id"] for i in range(3)]
    for message in await kv.lease("g", max=2):
        assert (await answer(kv, "g", "ack", token=message["token"]))[0] == 200
    [held] = await kv.lease("g", leaseMs=30_000)
    assert held["id"] == ids[2]
    status, _ = await answer(kv, "g", "reset", **{"from": ids[1]})
    assert status == 200
    status, fenced = await answer(kv, "g", "ack", token=held["token"])
    assert status == 409 and fenced["error"]["code"] == "FENCED"
    assert [m["id"] for m in await kv.lease("g", max=10)] == ids[1:]
    assert (await answer(kv, "g", "reset", **{"from": "-1"}))[0] == 200
    assert [m["id"] for m in await kv.lease("g", max=10)] == ids


async def test_redrive_moves_dead_letters_back(kv: KvApi) -> None:
    for i in range(3):
        await kv.enqueue(i)
    for message in await kv.lease("g", max=3):
        assert (await answer(kv, "g", "term", token=message["token"], error="x"))[0] == 200
    page = await dlq(kv, "g", limit="2")
    assert len(page["entries"]) == 2 and page["next"] == page["entries"][-1]["id"]
    rest = await dlq(kv, "g", limit="2", after=page["next"])
    assert len(rest["entries"]) == 1 and rest["next"] is None
    first_id = page["entries"][0]["id"]
    status, receipt = await kv.call("POST", "/queue/groups/g/dlq/redrive", body={"ids": [first_id]})
    assert status == 200 and receipt["redriven"] == 1
    assert [m["id"] for m in await kv.lease("g", max=10)] == [first_id]
    status, receipt = await kv.call("POST", "/queue/groups/g/dlq/redrive")
    assert status == 200 and receipt["redriven"] == 2
    assert len(await kv.lease("g", max=10)) == 2
    assert (await dlq(kv, "g"))["entries"] == []
    tail = await kv.tail()
    status, receipt = await kv.call("POST", "/queue/groups/g/dlq/redrive")  # all of none: 0, not an error
    assert (status, receipt["redriven"]) == (200, 0) and await kv.tail() == tail
    status, refused = await kv.call("POST", "/queue/groups/g/dlq/redrive", body={"ids": [first_id]})
    assert status == 400, refused  # a named id that is not a dead letter


async def test_groups_each_get_every_message_and_from_now_skips_the_past(kv: KvApi) -> None:
    await kv.enqueue("old")
    status, _ = await kv.call("PUT", "/queue/groups/late", body={"from": "now"})
    assert status == 201
    await kv.call("PUT", "/queue/groups/all", body={"from": "-1"})
    new = await kv.enqueue("new")
    assert [m["value"] for m in await kv.lease("all", max=10)] == ["old", "new"]
    assert [m["id"] for m in await kv.lease("late", max=10)] == [new["id"]]
    assert (await kv.ok("GET", "/queue/groups"))["groups"] == ["all", "late"]
    status, body = await kv.call("GET", "/queue/groups/nope/dlq")
    assert status == 404 and body["error"]["code"] == "queue_group_not_found"


async def test_stats_count_depth_in_flight_and_dead_letters(kv: KvApi) -> None:
    for i in range(4):
        await kv.enqueue(i)
    await kv.ok("PUT", "/queue/groups/g", body={})
    stats = await kv.stats("g")
    assert (stats["depth"], stats["inFlight"], stats["dlq"]) == (4, 0, 0)
    assert stats["oldestAgeMs"] is not None and stats["oldestAgeMs"] >= 0
    a, _ = await kv.lease("g", max=2, leaseMs=30_000)
    await answer(kv, "g", "term", token=a["token"])
    stats = await kv.stats("g")
    assert (stats["depth"], stats["inFlight"], stats["dlq"]) == (2, 1, 1)
    assert (await kv.ok("GET", "/queue/stats"))["groups"].keys() == {"g"}


async def test_null_options_mean_their_defaults(kv: KvApi) -> None:
    await kv.enqueue("job", delay=None, backoffSchedule=None)
    status, body = await kv.call("POST", "/queue/groups/g/lease", body={"worker": "w", "leaseMs": None, "max": None})
    assert status == 200, body
    [leased] = body["messages"]
    assert 25_000 < leased["leaseExpiresAt"] - leased["enqueuedAt"] < 35_000  # the default lease, 30 s
    status, body = await answer(kv, "g", "extend", token=leased["token"], leaseMs=None)
    assert status == 200, body
    status, body = await answer(kv, "g", "nack", token=leased["token"], error=None, delayMs=None)
    assert status == 200, body


async def test_a_queue_holds_at_most_64_groups_however_they_are_named(kv: KvApi) -> None:
    """Each group keeps a place for every message: naming new groups must not grow memory without end."""
    await kv.enqueue({"job": 1})
    for n in range(64):
        assert (await kv.call("PUT", f"/queue/groups/g{n}", body={"from": "-1"}))[0] == 201
    tail = await kv.tail()
    status, answer = await kv.call("PUT", "/queue/groups/one-more", body={"from": "-1"})
    assert status == 400 and "64 consumer groups" in answer["error"]["message"]
    status, answer = await kv.call("POST", "/queue/groups/by-lease/lease", body={"worker": "w", "leaseMs": 1000})
    assert status == 400 and "64 consumer groups" in answer["error"]["message"]
    assert await kv.tail() == tail
    assert len((await kv.ok("GET", "/queue/stats"))["groups"]) == 64


async def test_a_worker_that_leaves_a_waiting_lease_is_never_handed_a_message(kv: KvApi) -> None:
    """A waiting lease ends with its client: a message enqueued after the worker left goes, on its
    first attempt, to the next worker, instead of to the departed one (where it would lose an attempt)."""
    await kv.ok("PUT", "/queue/groups/g", body={"from": "-1"})
    async with aiohttp.ClientSession() as departing:
        waiting = spawn(
            departing.post(
                f"{kv.base}/queue/groups/g/lease", json={"worker": "gone", "leaseMs": 1000, "waitMs": 20_000}
            ),
            name="departing-lease",
        )
        await asyncio.sleep(0.3)
        waiting.cancel()
    await asyncio.sleep(0.3)  # the origin sees the connection close
    message = await kv.enqueue("for the living")
    got = await kv.lease("g", worker="here", waitMs=2_000)
    assert [(m["id"], m["attempt"]) for m in got] == [(message["id"], 1)]
    assert (await kv.stats("g"))["inFlight"] == 1
