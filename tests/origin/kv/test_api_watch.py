"""Watch over HTTP: `/kv/api/v1/{db}/watch` is a Durable Streams read of the change stream: catch-up
JSON, a long-poll that wakes on a commit, SSE, and a `prefix=` filter that keeps only matching
changes while its offsets stay those of the unfiltered read (so filtered and unfiltered readers
resume from each other's offsets).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from plugin_streams.shared.aio.tasks import spawn
from tests.origin.kv.conftest import KvApi
from tests.support.processes import OriginProcess
from tests.support.sse_reader import SSEReader

#: Long enough that a long-poll answered well before it was woken, not timed out.
LONG_POLL_S = 5.0
NEXT = "Stream-Next-Offset"


@pytest.fixture(scope="module")
def kv_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path_factory.mktemp("kv-watch") / "data", long_poll_timeout=LONG_POLL_S) as process:
        yield process


async def watch(kv: KvApi, offset: str, *prefixes: list[Any], live: str | None = None) -> tuple[int, Any, str]:
    """(status, events, next offset) of one watch read."""
    params = [("offset", offset)] + [("prefix", json.dumps(p)) for p in prefixes]
    if live is not None:
        params.append(("live", live))
    async with kv.http.get(f"{kv.base}/watch", params=params) as response:
        body = await response.read()
        return response.status, json.loads(body) if body else None, response.headers.get(NEXT, "")


async def test_watch_before_the_first_write_is_a_404(kv: KvApi) -> None:
    status, _, _ = await watch(kv, "-1")
    assert status == 404


async def test_catch_up_is_the_change_stream(kv: KvApi) -> None:
    receipts = [await kv.set(["w", str(i)], i) for i in range(3)]
    await kv.delete(["w", "0"])
    status, events, next_offset = await watch(kv, "-1")
    assert status == 200
    assert events == await kv.events()
    assert next_offset == await kv.tail()
    assert [e["offset"] for e in events[:3]] == [r["offset"] for r in receipts]
    assert [c for e in events for c in e["changes"]] == [
        {"key": ["w", "0"], "op": "set", "value": 0, "expireAt": None},
        {"key": ["w", "1"], "op": "set", "value": 1, "expireAt": None},
        {"key": ["w", "2"], "op": "set", "value": 2, "expireAt": None},
        {"key": ["w", "0"], "op": "delete"},
    ]
    middle = await watch(kv, receipts[1]["offset"])
    assert [e["versionstamp"] for e in middle[1]] == [e["versionstamp"] for e in events[2:]]


async def test_a_long_poll_wakes_on_a_commit(kv: KvApi) -> None:
    receipt = await kv.set(["lp"], 0)
    poll = spawn(watch(kv, receipt["offset"], live="long-poll"), name="long-poll")
    await asyncio.sleep(0.3)
    assert not poll.done()
    committed = time.monotonic()
    second = await kv.set(["lp"], 1)
    status, events, next_offset = await poll
    assert time.monotonic() - committed < LONG_POLL_S / 2
    assert status == 200
    assert [e["versionstamp"] for e in events] == [second["versionstamp"]]
    assert next_offset == second["offset"]


async def test_prefix_filter_keeps_matching_changes_and_advances_offsets(kv: KvApi) -> None:
    first = await kv.atomic(
        [{"type": "set", "key": ["users", "1"], "value": "ann"}, {"type": "set", "key": ["orders", "1"], "value": 9}]
    )
    await kv.set(["orders", "2"], 10)
    await kv.set(["users"], "the prefix key itself is not under the prefix")
    await kv.set(["users", "2", "profile"], {"x": 1})
    await kv.enqueue("queue-only commits have no changes")
    status, kept, next_offset = await watch(kv, "-1", ["users"])
    assert status == 200
    unfiltered = await kv.events()
    assert next_offset == unfiltered[-1]["offset"]
    assert [e["offset"] for e in kept] == [first[1]["offset"], unfiltered[3]["offset"]]
    assert kept[0]["changes"] == [{"key": ["users", "1"], "op": "set", "value": "ann", "expireAt": None}]
    assert kept[0]["versionstamp"] == first[1]["versionstamp"]
    assert kept[1]["changes"][0]["key"] == ["users", "2", "profile"]
    both = await watch(kv, "-1", ["users"], ["orders"])
    assert [c["key"] for e in both[1] for c in e["changes"]] == [
        ["users", "1"],
        ["orders", "1"],
        ["orders", "2"],
        ["users", "2", "profile"],
    ]
    # A filtered reader and an unfiltered one resume from each other's offsets.
    assert (await watch(kv, first[1]["offset"], ["orders"]))[1][0]["changes"][0]["key"] == ["orders", "2"]
    assert await watch(kv, next_offset, ["users"]) == (200, [], next_offset)


async def test_a_filtered_long_poll_passes_over_other_commits(kv: KvApi) -> None:
    start = await kv.set(["a", "0"], 0)
    poll = spawn(watch(kv, start["offset"], ["a"], live="long-poll"), name="long-poll")
    await asyncio.sleep(0.2)
    other = await kv.set(["b", "0"], 0)
    status, events, next_offset = await poll
    if status == 200 and events == []:
        # The other commit woke it: nothing kept, but the offset moved past it.
        assert next_offset == other["offset"]
        poll = spawn(watch(kv, next_offset, ["a"], live="long-poll"), name="long-poll")
        await asyncio.sleep(0.2)
        mine = await kv.set(["a", "1"], 1)
        status, events, next_offset = await poll
    else:
        mine = await kv.set(["a", "1"], 1)
        status, events, next_offset = await watch(kv, next_offset, ["a"])
    assert status == 200
    assert [c["key"] for e in events for c in e["changes"]] == [["a", "1"]]
    assert next_offset == mine["offset"]


async def test_sse_delivers_each_commit(kv: KvApi) -> None:
    start = await kv.set(["s"], 0)
    timeout = aiohttp.ClientTimeout(total=15)
    async with kv.http.get(f"{kv.base}/watch", params={"offset": start["offset"], "live": "sse"}, timeout=timeout) as r:
        assert r.status == 200
        reader = SSEReader(r)
        commits = [await kv.set(["s"], i) for i in range(1, 4)]
        seen: list[dict[str, Any]] = []
        while len(seen) < 3:
            data = await reader.first("data", timeout=5)
            assert data is not None, reader.raw
            seen += json.loads(data)
    assert [e["versionstamp"] for e in seen] == [c["versionstamp"] for c in commits]


async def test_a_prefix_watch_with_sse_is_a_400(kv: KvApi) -> None:
    await kv.set(["x"], 1)
    status, body, _ = await watch(kv, "-1", ["x"], live="sse")
    assert status == 400
    assert "SSE" in body["error"]["message"]
