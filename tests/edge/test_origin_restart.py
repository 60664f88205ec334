"""SIGKILL the origin under live load through the edge, restart it on the same port: nothing is lost.

A writer appends through the edge with idempotent-producer headers and retries a failed append
(503 or a broken connection) with the same sequence number; readers follow the stream through the
edge with long-polls and SSE. Every reader must end with every acknowledged message exactly once,
in order. While the origin is down, immutable chunks already cached at the edge are still served,
and live reads get prompt 503s/204s rather than hanging.
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, offset_at, split_offset, until
from tests.support.followers import RETRYABLE, Follower, follow_long_poll, follow_sse

TEXT = "text/plain"
BINARY = "application/octet-stream"
LONG_POLL = 2.0
MESSAGES = 200
KILL_AT = 70


pytestmark = pytest.mark.timeout(120)


def message(seq: int) -> bytes:
    return f"m{seq:04d}|{'x' * (seq % 37)}\n".encode()


async def test_origin_killed_and_restarted_under_live_load_loses_nothing(servers: Servers) -> None:
    data_dir = servers.tmp_path / "data"
    origin = servers.origin(data_dir=data_dir, long_poll_timeout=LONG_POLL)
    port = origin.url.rsplit(":", 1)[1]
    edge = servers.edge(origin.url, long_poll_timeout=LONG_POLL)
    log_url, big_url = edge.stream_url + "restart/log", edge.stream_url + "restart/big"
    rng = random.Random(3)
    timeout = aiohttp.ClientTimeout(total=LONG_POLL + 15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # Immutable chunks of another stream, read once through the edge (so they are cached).
        generation, _ = split_offset(await create(session, big_url, BINARY))
        for _ in range(60):
            await append(session, big_url, BINARY, rng.randbytes(4000))
        cached: dict[str, bytes] = {}
        offset = offset_at(generation, 0)
        while True:
            async with session.get(big_url, params={"offset": offset}) as r:
                assert r.status == 200
                if "immutable" not in r.headers["Cache-Control"]:
                    break
                cached[offset] = await r.read()
                offset = r.headers["Stream-Next-Offset"]
        assert len(cached) >= 3

        await create(session, log_url, TEXT)
        done = asyncio.Event()
        followers = [Follower(f"long-poll-{i}") for i in range(3)] + [Follower(f"sse-{i}") for i in range(3)]
        tasks = [
            asyncio.ensure_future(
                (follow_long_poll if f.name.startswith("long") else follow_sse)(session, log_url, f, done)
            )
            for f in followers
        ]

        acked = 0
        attempts = 0
        retried = 0
        restarted = asyncio.Event()
        downtime: dict[str, object] = {}

        async def outage() -> None:
            """Kill the origin, check what the edge still serves, restart it on the same port."""
            origin.kill()
            killed = time.monotonic()
            served = 0
            for chunk_offset, body in cached.items():
                async with session.get(big_url, params={"offset": chunk_offset}) as r:
                    assert r.status == 200, f"cached chunk {chunk_offset}: {r.status} while the origin is down"
                    assert await r.read() == body
                    served += 1
            started = time.monotonic()
            async with session.get(log_url, params={"offset": "now", "live": "long-poll"}) as r:
                downtime["tail_long_poll"] = (r.status, round(time.monotonic() - started, 3))
            async with session.get(big_url, params={"offset": "-1"}) as r:
                downtime["uncached_read"] = r.status
            downtime["cached_chunks_served"] = served
            await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - killed)))
            await servers.aorigin("--port", port, data_dir=data_dir, long_poll_timeout=LONG_POLL)
            downtime["seconds"] = round(time.monotonic() - killed, 2)
            restarted.set()

        outage_task: asyncio.Future[None] | None = None
        headers = {"Content-Type": TEXT, "Producer-Id": "writer-1", "Producer-Epoch": "0"}
        async with asyncio.timeout(60):
            for seq in range(MESSAGES):
                if seq == KILL_AT:
                    outage_task = asyncio.ensure_future(outage())
                while True:
                    attempts += 1
                    try:
                        async with session.post(
                            log_url, data=message(seq), headers={**headers, "Producer-Seq": str(seq)}
                        ) as r:
                            await r.read()
                            status = r.status
                    except (aiohttp.ClientError, TimeoutError):
                        status = 0
                    if status in (200, 204):
                        acked += 1
                        break
                    assert status in (0, *RETRYABLE), f"append {seq}: unexpected {status}"
                    retried += 1
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.01)
            assert outage_task is not None
            await outage_task
        assert restarted.is_set()

        expected = b"".join(message(seq) for seq in range(MESSAGES))
        async with session.head(log_url) as r:
            final = r.headers["Stream-Next-Offset"]
        try:
            await until(lambda: all(f.offset == final for f in followers), 30, "every reader to reach the tail")
        except AssertionError:
            pass  # reported per reader below
        done.set()
        async with asyncio.timeout(LONG_POLL + 15):
            await asyncio.gather(*tasks)

    print(f"\nwriter: {acked} acknowledged, {attempts} attempts, {retried} retried; outage: {downtime}")
    for f in followers:
        print(
            f"  {f.name}: {len(f.data)} bytes, {f.requests} requests, {f.no_content} x 204, "
            f"{f.unavailable} x 503, {f.errors} connection errors, longest request {f.longest:.2f} s"
        )
    assert acked == MESSAGES
    assert retried > 0, "the outage never reached the writer"
    assert downtime["cached_chunks_served"] == len(cached)
    status, seconds = downtime["tail_long_poll"]  # type: ignore[misc]
    assert status in (204, 503) and seconds < LONG_POLL + 5
    for f in followers:
        assert f.offset == final, f"{f.name} stopped at {f.offset}, the tail is {final}"
        assert bytes(f.data) == expected, f"{f.name}: lost, repeated or reordered data"
        if f.name.startswith("long"):
            assert f.longest < LONG_POLL + 5, f"{f.name}: a long-poll hung for {f.longest:.1f} s"
