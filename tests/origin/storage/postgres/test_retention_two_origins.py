"""Retention on two origins sharing one database: the same earliest offset everywhere, space reclaimed.

Appends alternate between the origins on a stream that keeps its newest 250 bytes. Both origins
then name the same Stream-Earliest-Offset, answer 410 below it and the kept bytes from -1, and
the dropped batches are gone from the database (compaction ran, between commits, on whichever
origin got there first), while the stream goes on taking appends through either origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.support.processes import process_group
from tests.support.two_origins import TwoOrigins

pytestmark = pytest.mark.timeout(60)

BINARY = {"Content-Type": "application/octet-stream"}
APPENDS = 10
SIZE = 100


@pytest.fixture
def compacting_origins(tmp_path: Path, postgres_dsn: str) -> Iterator[TwoOrigins]:
    flags = ("--engine", "postgres", "--database-url", postgres_dsn, "--compact-min-bytes", "1")
    with process_group(tmp_path, long_poll_timeout=0.5) as group:
        yield TwoOrigins(group.origin(*flags, data_dir=tmp_path / "a"), group.origin(*flags, data_dir=tmp_path / "b"))


async def test_both_origins_keep_and_drop_the_same_bytes(compacting_origins: TwoOrigins, postgres_dsn: str) -> None:
    urls = [origin.stream_url + "kept" for origin in compacting_origins.both]
    async with aiohttp.ClientSession() as session:
        async with session.put(urls[0], headers=BINARY | {"Stream-Retention-Max-Bytes": "250"}) as response:
            start = response.headers["Stream-Next-Offset"]
        offsets = []
        for i in range(APPENDS):
            async with session.post(urls[i % 2], headers=BINARY, data=bytes([i]) * SIZE) as response:
                assert response.status == 204
                offsets.append(response.headers["Stream-Next-Offset"])
        for url in urls:
            async with session.head(url) as head:
                assert head.headers["Stream-Earliest-Offset"] == offsets[7], url
            async with session.get(url, params={"offset": start}) as gone:
                assert gone.status == 410 and gone.headers["Stream-Earliest-Offset"] == offsets[7]
            async with session.get(url, params={"offset": "-1"}) as kept:
                assert await kept.read() == bytes([8]) * SIZE + bytes([9]) * SIZE
        connection = await asyncpg.connect(postgres_dsn)
        try:
            stored = await connection.fetchval("SELECT stored_bytes FROM ds_stream WHERE path = 'kept'")
        finally:
            await connection.close()
        assert stored < APPENDS * SIZE, f"nothing was reclaimed: {stored} bytes stored"
        async with session.post(urls[1], headers=BINARY, data=b"x") as response:
            assert response.status == 204
