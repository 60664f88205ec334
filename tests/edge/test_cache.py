"""The edge's disk tier (edge.cache.DiskTier): files go away off the event loop, never a fresh one.

In-process; the autouse loop watch (tests/conftest.py) fails any test here that unlinks on the
event loop, which dropping a stream of many cached chunks used to do once per chunk.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from plugin_streams.edge.cache import DiskTier
from plugin_streams.edge.chunks import Chunk, ChunkKey
from plugin_streams.edge.freshness import Freshness

IMMUTABLE = "public, max-age=60, immutable"


def _chunk(start: int, body: bytes = b"x" * 100, scope: str = "/v1/stream/a") -> Chunk:
    key = ChunkKey(scope, 1, start)
    return Chunk.make(key, start + len(body), body, "application/octet-stream", IMMUTABLE, None)


async def _settle(tier: DiskTier) -> None:
    """Until every write and unlink the tier started has finished."""
    for _ in range(500):
        await asyncio.sleep(0.01)
        if tier._unlinker is None and not [t for t in asyncio.all_tasks() if "disk-cache" in t.get_name()]:
            return
    raise AssertionError("the disk tier did not settle")


def _files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".chunk"))


async def test_dropping_a_stream_unlinks_its_files_off_the_event_loop(tmp_path: Path) -> None:
    tier = DiskTier(str(tmp_path), 10 * 1024 * 1024, Freshness())
    await tier.open()
    for start in range(0, 200 * 100, 100):
        tier.put_soon(_chunk(start))
    tier.put_soon(_chunk(0, scope="/v1/stream/b"))
    await _settle(tier)
    assert len(_files(tmp_path)) == 201

    tier.drop_stream("/v1/stream/a")
    assert await tier.find("/v1/stream/a", 1, 0) is None
    await _settle(tier)
    assert len(_files(tmp_path)) == 1  # the other stream's chunk stays
    assert await tier.find("/v1/stream/b", 1, 0) is not None


async def test_a_chunk_stored_again_right_after_it_was_forgotten_keeps_its_new_file(tmp_path: Path) -> None:
    tier = DiskTier(str(tmp_path), 10 * 1024 * 1024, Freshness())
    await tier.open()
    tier.put_soon(_chunk(0))
    await _settle(tier)
    tier.drop_stream("/v1/stream/a")  # the same file name is doomed...
    tier.put_soon(_chunk(0, b"y" * 100))  # ...and wanted again before the unlink ran
    await _settle(tier)
    found = await tier.find("/v1/stream/a", 1, 0)
    assert found is not None and found.body == b"y" * 100
    assert len(_files(tmp_path)) == 1
