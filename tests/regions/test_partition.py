"""Cut the link between the regions for 30 s under steady writes and live readers in both.

The origin is in one region; a replica (`--replicate '**'`) in the other, 50 ms away through the
delay proxy. Writers: one at the origin, one through the replica with idempotent producer
headers (it retries each refused or broken append with the same sequence number). Readers: a
long-poll and an SSE reader at the origin, two long-poll and one SSE reader at the replica.

During the cut the replica keeps serving what it holds, its live readers keep waiting (204s,
keep-alives; never an error), and writes there get 503 with a Retry-After. After the link
returns, the replica catches up within 5 s and every reader in both regions ends with the
origin's exact stream: every acknowledged message exactly once, each writer's in order.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.edge.support import metric, scrape, until, wait_metric
from tests.regions.conftest import Regions
from tests.support.followers import RETRYABLE, Follower, follow_long_poll, follow_sse

TEXT = "text/plain"
CUT_SECONDS = 30.0
BEFORE_CUT = 3.0
AFTER_HEAL = 4.0

pytestmark = pytest.mark.timeout(150)


class Writer:
    def __init__(self, name: str, url: str, interval: float, producer: bool) -> None:
        self.name = name
        self.url = url
        self.interval = interval
        self.producer = producer
        self.acked: list[int] = []
        self.refused: list[tuple[int, str | None]] = []  # (status, Retry-After) of refused attempts
        self.broken = 0

    def message(self, seq: int) -> bytes:
        return f"{self.name}{seq:05d}\n".encode()

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set():
            headers = {"Content-Type": TEXT}
            if self.producer:
                headers.update({"Producer-Id": self.name, "Producer-Epoch": "0", "Producer-Seq": str(seq)})
            try:
                async with session.post(self.url, data=self.message(seq), headers=headers) as r:
                    await r.read()
                    status, retry_after = r.status, r.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError):
                status, retry_after = 0, None
                self.broken += 1
            if status in (200, 204):
                self.acked.append(seq)
                seq += 1
                await asyncio.sleep(self.interval)
                continue
            assert self.producer and status in (0, *RETRYABLE), f"{self.name} append {seq}: {status}"
            if status:
                self.refused.append((status, retry_after))
            await asyncio.sleep(0.3)  # a real client honours Retry-After; the test keeps the pace up


def parse(stream: bytes) -> list[str]:
    return stream.decode().splitlines()


async def tail_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.head(url) as r:
        assert r.status == 200, r.status
        return int(r.headers["Stream-Next-Offset"].split("_")[1])


async def test_a_30_second_partition_loses_nothing_and_heals_within_5_seconds(regions: Regions) -> None:
    replica = regions.replica("--replicate", "**", "--link-heartbeat", "0.5")
    origin_url = regions.origin.stream_url + "partition/log"
    replica_url = replica.stream_url + "partition/log"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.put(origin_url, headers={"Content-Type": TEXT}) as r:
            assert r.status == 201
        await wait_metric(session, replica.url, "ds_region_streams_replicated", 1, 10, region="eu")

        stop_writing, stop_reading = asyncio.Event(), asyncio.Event()
        origin_writer = Writer("o", origin_url, 0.05, producer=False)
        region_writer = Writer("e", replica_url, 0.1, producer=True)
        readers = {
            "origin": [Follower("origin-long-poll"), Follower("origin-sse")],
            "replica": [Follower("replica-long-poll-1"), Follower("replica-long-poll-2"), Follower("replica-sse")],
        }
        tasks = [asyncio.ensure_future(w.run(session, stop_writing)) for w in (origin_writer, region_writer)]
        for region, url in (("origin", origin_url), ("replica", replica_url)):
            for reader in readers[region]:
                follow = follow_sse if reader.name.endswith("sse") else follow_long_poll
                tasks.append(asyncio.ensure_future(follow(session, url, reader, stop_reading)))

        await asyncio.sleep(BEFORE_CUT)

        regions.link.cut()
        cut_at = time.monotonic()
        refused_before = len(region_writer.refused)
        local_reads = 0
        while time.monotonic() - cut_at < CUT_SECONDS:
            # The replica serves everything it holds: a catch-up read and a HEAD, answered locally.
            async with session.get(replica_url, params={"offset": "-1"}) as r:
                assert r.status == 200, f"replica read during the cut: {r.status}"
                held = await r.read()
            async with session.head(replica_url) as r:
                assert r.status == 200, f"replica HEAD during the cut: {r.status}"
            async with session.get(origin_url, params={"offset": "-1"}) as r:
                assert (await r.read()).startswith(held), "the replica holds something the origin does not"
            local_reads += 1
            await asyncio.sleep(1.0)
        refused_during_cut = region_writer.refused[refused_before:]
        metrics_during_cut = await scrape(session, replica.url)
        regions.link.heal()
        healed_at = time.monotonic()

        # Lag back to normal: the replica holds what the origin held when the link returned.
        origin_tail_at_heal = await tail_of(session, origin_url)
        await until(
            lambda: _holds(session, replica_url, origin_tail_at_heal), 5.0, "the replica to catch up within 5 s"
        )
        caught_up_after = time.monotonic() - healed_at
        await asyncio.sleep(AFTER_HEAL)
        stop_writing.set()
        await asyncio.gather(*tasks[:2])
        final_tail = await tail_of(session, origin_url)
        async with session.get(origin_url, params={"offset": "-1"}) as r:
            final = await r.read()
        assert len(final) == final_tail

        everyone = readers["origin"] + readers["replica"]
        await until(lambda: all(len(f.data) >= final_tail for f in everyone), 20, "every reader to reach the tail")
        stop_reading.set()
        await asyncio.gather(*tasks[2:])
        metrics_after = await scrape(session, replica.url)

    print(
        f"\npartition: {CUT_SECONDS:.0f} s cut; replica reads during the cut {local_reads}; region writes refused "
        f"{len(refused_during_cut)} (statuses {sorted({s for s, _ in refused_during_cut})}); caught up "
        f"{caught_up_after:.2f} s after the heal; origin writer acked {len(origin_writer.acked)}, region writer "
        f"acked {len(region_writer.acked)}; readers: "
        + ", ".join(f"{f.name} 204s={f.no_content} 503s={f.unavailable} errors={f.errors}" for f in everyone)
    )
    # During the cut: writes at the replica refused with 503 and a Retry-After, reads served.
    assert refused_during_cut, "no write at the replica was refused during the cut"
    assert all(status == 503 and retry for status, retry in refused_during_cut), refused_during_cut
    assert metric(metrics_during_cut, "ds_region_link_up", region="eu") == 0
    assert metric(metrics_after, "ds_region_link_up", region="eu") == 1
    assert local_reads >= CUT_SECONDS * 0.8
    # Live readers in the replica's region waited through the cut: no error, no 503.
    for reader in readers["replica"]:
        assert reader.unavailable == 0 and reader.errors == 0, reader
    # Every reader has the origin's exact stream; every acknowledged message is in it once, in order.
    lines = parse(final)
    assert len(lines) == len(set(lines)), "a message was stored twice"
    for writer in (origin_writer, region_writer):
        mine = [int(line[1:]) for line in lines if line.startswith(writer.name)]
        assert mine == sorted(mine), f"{writer.name}: out of order"
        assert set(writer.acked) <= set(mine), f"{writer.name}: acknowledged messages missing"
    assert len(origin_writer.acked) > 0 and len(region_writer.acked) > 0
    for reader in everyone:
        assert bytes(reader.data) == final, f"{reader.name} differs from the origin's stream"
    assert caught_up_after <= 5.0


async def _holds(session: aiohttp.ClientSession, url: str, position: int) -> bool:
    return await tail_of(session, url) >= position
