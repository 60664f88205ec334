"""Retention: the oldest data goes (410 Gone with the earliest offset), the stream goes on,
disk space comes back, and all of it survives a restart."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from aiohttp.web import Application
from prometheus_client import CollectorRegistry

from plugin_streams.origin.app import build_app
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.storage import FileStore
from plugin_streams.shared.auth import AccessPolicy
from tests.support.memory_origin import AiohttpClient, Client, MemoryClient, S

BINARY = {"Content-Type": "application/octet-stream"}


async def append_all(client: Client, path: str, count: int, size: int) -> list[str]:
    offsets = []
    for i in range(count):
        r = await client.post(S + path, headers=BINARY, data=bytes([i % 256]) * size)
        assert r.status == 204
        offsets.append(r.headers["Stream-Next-Offset"])
    return offsets


async def test_max_bytes_drops_oldest_whole_appends(memory_client: MemoryClient) -> None:
    client = await memory_client(compact_min_bytes=1)
    r = await client.put(S + "r", headers=BINARY | {"Stream-Retention-Max-Bytes": "250"})
    start = r.headers["Stream-Next-Offset"]
    offsets = await append_all(client, "r", 10, 100)
    head = await client.head(S + "r")
    assert head.headers["Stream-Retention-Max-Bytes"] == "250"
    earliest = head.headers["Stream-Earliest-Offset"]
    assert earliest == offsets[7]  # 200 bytes kept: whole appends only, never more than 250
    gone = await client.get(S + "r", params={"offset": start})
    assert gone.status == 410 and gone.headers["Stream-Earliest-Offset"] == earliest
    r = await client.get(S + "r", params={"offset": "-1"})  # the start is the earliest kept data
    assert await r.read() == bytes([8]) * 100 + bytes([9]) * 100
    r = await client.get(S + "r", params={"offset": earliest})
    assert r.status == 200 and len(await r.read()) == 200
    # The stream goes on.
    assert (await client.post(S + "r", headers=BINARY, data=b"x")).status == 204


async def test_max_age_with_a_clock(memory_client: MemoryClient) -> None:
    now = [1_800_000_000_000]
    client = await memory_client(clock_ms=lambda: now[0], compact_min_bytes=1)
    await client.put(S + "a", headers=BINARY | {"Stream-Retention-Max-Age": "60"})
    old = await append_all(client, "a", 3, 10)
    now[0] += 61_000
    fresh = await append_all(client, "a", 2, 10)
    r = await client.get(S + "a", params={"offset": old[0]})
    assert r.status == 410 and r.headers["Stream-Earliest-Offset"] == old[2]
    r = await client.get(S + "a", params={"offset": "-1"})
    assert r.headers["Stream-Next-Offset"] == fresh[1] and len(await r.read()) == 20


async def test_create_is_idempotent_only_with_the_same_limits(memory_client: MemoryClient) -> None:
    client = await memory_client()
    headers = BINARY | {"Stream-Retention-Max-Bytes": "1000", "Stream-Max-Size": "10"}
    assert (await client.put(S + "x", headers=headers)).status == 201
    assert (await client.put(S + "x", headers=headers)).status == 200
    assert (await client.put(S + "x", headers=BINARY | {"Stream-Max-Size": "10"})).status == 409
    too_big = await client.post(S + "x", headers=BINARY, data=b"y" * 11)
    assert too_big.status == 413
    assert (await client.post(S + "x", headers=BINARY, data=b"y" * 10)).status == 204
    assert (await client.head(S + "x")).headers["Stream-Max-Size"] == "10"


async def test_file_engine_reclaims_disk_and_keeps_it_across_restarts(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    config = OriginConfig(data_dir=str(tmp_path), compact_min_bytes=4096)

    def app() -> Application:
        store = FileStore(str(tmp_path))
        return build_app(config, store=store, registry=CollectorRegistry(), policy=AccessPolicy())

    client = await aiohttp_client(app())
    await client.put(S + "big", headers=BINARY | {"Stream-Retention-Max-Bytes": "10000"})
    offsets = await append_all(client, "big", 100, 1000)
    stream_dir = next((tmp_path / "streams").iterdir())

    def log_bytes() -> int:
        """Bytes of data files once no compaction is half-way (old and new file both present)."""
        for _ in range(100):
            logs = [f for f in stream_dir.iterdir() if f.name.startswith("data")]
            if len(logs) == 1:
                return logs[0].stat().st_size
            time.sleep(0.01)
        return sum(f.stat().st_size for f in logs)

    # 100 kB appended; 10 kB kept, plus at most one compaction threshold not yet reclaimed.
    for _ in range(50):
        if log_bytes() < 20_000:
            break
        await asyncio.sleep(0.05)
    assert log_bytes() < 20_000
    before = await (await client.get(S + "big", params={"offset": "-1"})).read()
    assert len(before) == 10_000
    await client.close()

    client = await aiohttp_client(app())  # a restart on the same directory
    r = await client.get(S + "big", params={"offset": "-1"})
    assert await r.read() == before
    assert (await client.get(S + "big", params={"offset": offsets[0]})).status == 410
    assert (await client.get(S + "big", params={"offset": offsets[95]})).status == 200
    more = await append_all(client, "big", 5, 1000)
    r = await client.get(S + "big", params={"offset": offsets[-1]})
    assert r.headers["Stream-Next-Offset"] == more[-1]
    for _ in range(50):  # a compaction may be between writing the new file and removing the old
        logs = [f for f in os.listdir(stream_dir) if f.startswith(("data", "index"))]
        if len(logs) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(logs) == 2
