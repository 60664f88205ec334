"""Two origins on one database: live readers on one are woken by appends and deletions made on the other.

Real origin processes on the postgres engine. The origin that commits an append names the stream
in a coalesced NOTIFY; the other one's LISTEN connection catches up on it and wakes its long-polls
and SSE responses. Here readers on A follow a stream that only B writes to: they get every
message in order, within a bound, and the delivery latency (POST sent through B -> message read
on A) is measured and printed. A deletion through B then ends A's readers (404, end of SSE).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.headers import CONTENT_TYPE, STREAM_NEXT_OFFSET
from tests.support.sse_reader import SSEReader
from tests.support.two_origins import TwoOrigins

pytestmark = pytest.mark.timeout(120)

APPENDS = 200
#: Pause between appends: each one is delivered on its own (no batching hides the latency).
APPEND_GAP = 0.01
#: Every message must reach A's readers within this many seconds of its POST being sent to B.
DELIVERY_BOUND = 2.0
#: A deletion through B must end A's readers within this many seconds.
DELETE_BOUND = 10.0
TOKEN = re.compile(rb"\[m:(\d+)\]")


@dataclass
class Received:
    """The messages one reader got, in order, with the monotonic time each arrived."""

    seqs: list[int] = field(default_factory=list)
    at: dict[int, float] = field(default_factory=dict)
    ended_with: str = ""  # how the reader ended: "404", "sse ended"

    def take(self, body: bytes) -> None:
        now = time.monotonic()
        for match in TOKEN.finditer(body):
            seq = int(match.group(1))
            self.seqs.append(seq)
            self.at.setdefault(seq, now)


async def _long_poll(session: aiohttp.ClientSession, url: str, got: Received) -> None:
    offset = "-1"
    while True:
        async with session.get(url, params={"offset": offset, "live": "long-poll"}) as response:
            if response.status == 404:
                got.ended_with = "404"
                return
            assert response.status in (200, 204), (response.status, await response.text())
            got.take(await response.read())
            offset = response.headers[STREAM_NEXT_OFFSET]


async def _sse(session: aiohttp.ClientSession, url: str, got: Received, connected: asyncio.Event) -> None:
    async with session.get(url, params={"offset": "-1", "live": "sse"}) as response:
        assert response.status == 200, await response.text()
        connected.set()
        reader = SSEReader(response)
        while (event := await reader.next(timeout=60)) is not None:
            if event.event == "data":
                got.take(event.data.encode())
        got.ended_with = "sse ended"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _wait_for(condition: Callable[[], bool], bound: float, what: str) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {bound} s"
        await asyncio.sleep(0.02)


async def test_readers_on_one_origin_follow_appends_and_the_deletion_made_through_the_other(
    two_origins: TwoOrigins,
) -> None:
    url_a, url_b = two_origins.a.stream_url + "live/s", two_origins.b.stream_url + "live/s"
    sse, polled = Received(), Received()
    sent: dict[int, float] = {}
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    async with session:
        async with session.put(url_b, headers={CONTENT_TYPE: "text/plain"}) as created:
            assert created.status == 201
        sse_connected = asyncio.Event()
        readers = [spawn(_sse(session, url_a, sse, sse_connected), name="sse-on-a")]
        readers.append(spawn(_long_poll(session, url_a, polled), name="long-poll-on-a"))
        try:
            async with asyncio.timeout(10):
                await sse_connected.wait()
            await asyncio.sleep(0.7)  # the long-poll is waiting at the tail (its first answer was the empty stream)
            for seq in range(APPENDS):
                sent[seq] = time.monotonic()
                async with session.post(url_b, data=f"[m:{seq}]", headers={CONTENT_TYPE: "text/plain"}) as r:
                    assert r.status == 204, await r.text()
                await asyncio.sleep(APPEND_GAP)
            await _wait_for(lambda: len(sse.at) == len(polled.at) == APPENDS, DELIVERY_BOUND, "every message on A")
            assert sse.seqs == polled.seqs == list(range(APPENDS))

            deleted_at = time.monotonic()
            async with session.delete(url_b) as r:
                assert r.status == 204
            async with asyncio.timeout(DELETE_BOUND):
                await asyncio.gather(*readers)
            delete_seconds = time.monotonic() - deleted_at
        finally:
            await cancel_all(readers)
    assert (sse.ended_with, polled.ended_with) == ("sse ended", "404")
    report = []
    for name, got in (("sse", sse), ("long-poll", polled)):
        latencies = [got.at[seq] - sent[seq] for seq in range(APPENDS)]
        p50, p99, worst = _percentile(latencies, 0.5), _percentile(latencies, 0.99), max(latencies)
        report.append(f"{name} p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms")
        assert worst < DELIVERY_BOUND, f"{name}: a message took {worst:.2f} s to reach A"
    print(f"\ncross-origin delivery of {APPENDS} appends (POST to B -> read on A): " + "; ".join(report))
    print(f"deletion through B ended A's readers in {delete_seconds * 1000:.0f} ms")
