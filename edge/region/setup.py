"""Assemble a region for an edge process: replica storage, followers, change feed, and what
answers requests with it: the protocol's router and the REST API's RegionRest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.origins import Origins
from plugin_streams.edge.region.changes import ChangeFollower
from plugin_streams.edge.region.gate import ReadGate
from plugin_streams.edge.region.interest import ReadInterest
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.patterns import PathPatterns
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.region.replication_client import ReplicationClient
from plugin_streams.edge.region.rest import RegionRest
from plugin_streams.edge.region.router import RegionRouter
from plugin_streams.edge.region.writes import RegionWrites
from plugin_streams.origin.embed import EmbeddedOrigin, ReadSettings
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.clock import WallClock, wall_clock_ms

logger = logging.getLogger(__name__)


@dataclass
class Region:
    router: RegionRouter  # protocol requests (/v1/stream/...)
    rest: RegionRest  # REST API requests (/streams/api/v1/streams/...)
    replica: Replica
    task: asyncio.Task[None]

    async def close(self) -> None:
        await cancel_all([self.task])
        await self.replica.close()


async def open_region(
    config: EdgeConfig,
    origins: Origins,
    session: aiohttp.ClientSession,
    registry: CollectorRegistry,
    policy: AccessPolicy,
    *,
    clock_ms: WallClock = wall_clock_ms,
) -> Region:
    assert config.region is not None
    metrics = RegionMetrics(registry, config.region)
    link = Link(metrics.link_up)
    headers = {"Authorization": f"Bearer {config.origin_token}"} if config.origin_token else {}
    local = EmbeddedOrigin.on_disk(config.replica_dir, clock_ms)
    client = ReplicationClient(origins, session, headers, heartbeat=config.replica_heartbeat)
    interest = ReadInterest(PathPatterns(config.replicate), config.replica_idle)
    replica = Replica(local, client, interest, metrics, link, clock_ms=clock_ms)
    await replica.start()
    changes = ChangeFollower(replica, client, link, config.link_heartbeat)
    # The replica answers reads with the origin's own handlers (the edge exports ds_edge_* and
    # ds_region_*; theirs stay private).
    settings = ReadSettings(
        long_poll_timeout=config.long_poll_timeout,
        sse_max_age=config.sse_max_age,
        sse_keepalive=config.sse_keepalive,
        sse_client_buffer=config.sse_client_buffer,
        sse_write_timeout=config.sse_write_timeout,
        chunk_size=config.replica_chunk_size,
    )
    gate = ReadGate(config.region, replica, changes, metrics, policy, config.replica_chunk_size)
    writes = RegionWrites(config.region, replica, link, metrics)
    router = RegionRouter(gate, writes, local.read_handlers(settings))
    rest = RegionRest(gate, writes, local.rest_handlers(settings, policy))
    logger.info(
        "region %s: replica in %s, %d streams held, replicating %s",
        config.region,
        config.replica_dir,
        len(local),
        ", ".join(config.replicate) or "streams on first read",
    )
    task = spawn(changes.run(), name="region-change-feed")
    # Start serving once the link is up (or clearly is not: then serve what the replica holds).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(config.link_heartbeat * 3):
            await link.wait_up()
    return Region(router, rest, replica, task)
