"""Reads inside one JSON append of a million messages: no rescan of it, on origin or edge.

A read may start at any message boundary of a JSON stream. The origin used to find out by
scanning the whole record on its event loop for every such read, and the edge by scanning a
whole chunk when it cached it: seconds during which nothing else was answered. Each test polls
/healthz while it reads (tests.support.healthz_watch).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.big_batch import BIG_BATCH, at, big_stream, value
from tests.support.healthz_watch import MAX_STALL, timed
from tests.support.processes import EdgeProcess, OriginProcess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def origin(data_dir: Path) -> Iterator[OriginProcess]:
    with OriginProcess(data_dir, "--fsync", "never") as process:
        yield process


async def _read_inside(http: aiohttp.ClientSession, url: str, watched: str, generation: str, message: int) -> float:
    """Read from message `message` of the batch; the longest /healthz wait of `watched` meanwhile."""
    request = http.get(url, params={"offset": at(generation, message)})
    status, body, took, stall = await timed(watched, request)
    print(f"read at message {message}: {took:.3f} s, /healthz of {watched} waited {stall:.3f} s")
    assert status == 200, body[:200]
    assert json.loads(body)[:3] == [value(m) for m in range(message, message + 3) if m < BIG_BATCH]
    return stall


async def test_origin_reads_inside_a_huge_batch_without_rescanning_it(
    origin: OriginProcess, data_dir: Path, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        url, generation = await big_stream(http, origin.url, "big/origin")
        stalls = [await _read_inside(http, url, origin.url, generation, m) for m in (BIG_BATCH // 2, 7, BIG_BATCH - 5)]
        assert max(stalls) < MAX_STALL
        async with http.get(url, params={"offset": at(generation, BIG_BATCH // 3, 1)}) as r:
            assert r.status == 400 and "boundary" in await r.text()
    # Recovery rebuilds nothing up front: the boundaries come back when the batch is read.
    origin.stop()
    with OriginProcess(data_dir, "--fsync", "never") as again:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            url = again.url + "/v1/stream/big/origin"
            stalls = [await _read_inside(http, url, again.url, generation, m) for m in (BIG_BATCH // 4, 3)]
            assert max(stalls) < MAX_STALL
            async with http.get(url, params={"offset": at(generation, 11, 3)}) as r:
                assert r.status == 400


async def test_an_edge_caching_a_huge_batch_stays_responsive(origin: OriginProcess, tmp_path: Path) -> None:
    with EdgeProcess(origin.url, tmp_path) as edge:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            # A later append makes the batch's read end before the tail: immutable, so the edge keeps it.
            _, generation = await big_stream(http, origin.url, "big/edge", then=b'"after"')
            url = edge.url + "/v1/stream/big/edge"
            stalls = [await _read_inside(http, url, edge.url, generation, 0)]
            for message in (3, BIG_BATCH // 2, BIG_BATCH - 2, BIG_BATCH // 2):
                stalls.append(await _read_inside(http, url, edge.url, generation, message))
            assert max(stalls) < MAX_STALL
            async with http.get(url, params={"offset": at(generation, 5, 2)}) as r:
                assert r.status == 400
            async with http.get(origin.url + "/healthz") as r:
                assert r.status == 200
