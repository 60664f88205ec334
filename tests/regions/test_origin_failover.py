"""A regional replica given two origins follows the second while the first is dead (edge.origins).

Its change feed, its streams' log feeds, the listing it reconciles with and the writes it
forwards all go to the origin that answers; the replica serves reads from its own copy.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.edge.support import append, create, metric, scrape, until, wait_metric
from tests.regions.conftest import Regions
from tests.support.ports import closed_port

TEXT = "text/plain"
pytestmark = pytest.mark.timeout(120)


async def _body(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url, params={"offset": "-1"}) as r:
        assert r.status == 200, (r.status, await r.text())
        return await r.read()


async def test_a_replica_follows_the_second_origin_while_the_first_is_dead(regions: Regions) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    replica = regions.servers.edge(
        dead,
        "--origin",
        regions.link.url,
        "--region",
        "eu",
        "--replica-dir",
        str(regions.servers.tmp_path / "replica"),
        "--replicate",
        "logs/**",
        long_poll_timeout=regions.long_poll_timeout,
    )
    origin_url = regions.origin.stream_url + "logs/app"
    replica_url = replica.stream_url + "logs/app"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await wait_metric(session, replica.url, "ds_region_link_up", 1, 10, region="eu")
        await create(session, origin_url, TEXT, b"made at the origin;")
        await wait_metric(session, replica.url, "ds_region_streams_replicated", 1, 10, region="eu")
        await append(session, replica_url, TEXT, b"written through the replica;")  # forwarded to the origin

        async def replica_holds_both() -> bool:
            return await _body(session, replica_url) == b"made at the origin;written through the replica;"

        await until(replica_holds_both, 10, "the replica to hold both appends")
        assert await _body(session, origin_url) == b"made at the origin;written through the replica;"
        text = await scrape(session, replica.url)
    assert metric(text, "ds_region_local_reads_total", region="eu") >= 1  # served from the replica's copy
    assert metric(text, "ds_edge_origin_failovers_total") == 1
    assert metric(text, "ds_edge_origin_up", origin=dead) == 0
    assert metric(text, "ds_edge_origin_up", origin=regions.link.url) == 1
