"""The replication API's stream listing pages through every path once, in order.

A real origin; regional replicas page through this listing on every (re)connect. A page walks
the registry's sorted index from `after` instead of sorting every path on each request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.support.healthz_watch import MAX_STALL, HealthzWatch
from tests.support.processes import OriginProcess

STREAMS = 3000
PAGE = 1000


async def test_replication_listing_pages_every_path_once_in_order(tmp_path: Path) -> None:
    with OriginProcess(tmp_path / "data", "--engine", "memory") as origin:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            names = [f"r/{i:05d}" for i in range(STREAMS)]
            semaphore = asyncio.Semaphore(32)

            async def create(name: str) -> None:
                async with semaphore, session.put(origin.stream_url + name) as r:
                    assert r.status == 201, await r.text()

            await asyncio.gather(*(create(name) for name in names))
            seen: list[str] = []
            after = ""
            pages = 0
            async with HealthzWatch(origin.url) as watch:
                while True:
                    url = f"{origin.url}/v1/replication/streams?limit={PAGE}&after={after}"
                    async with session.get(url) as r:
                        assert r.status == 200, await r.text()
                        page = await r.json()
                    pages += 1
                    seen += [s["config"]["path"] for s in page["streams"]]
                    if not page["next"]:
                        break
                    after = page["next"]
                    assert pages < 10, "the listing never ends"
            assert seen == names
            assert pages == STREAMS // PAGE
            assert watch.worst < MAX_STALL, f"/healthz waited {watch.worst:.3f} s behind a listing page"
