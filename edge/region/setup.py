"""Assemble a region for an edge process: replica storage, followers, change feed, router."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.region.changes import ChangeFollower
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.patterns import PathPatterns
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.region.router import RegionRouter
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.handlers import StreamHandlers
from plugin_streams.origin.limits import LiveLimiter
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.storage import FileStore
from plugin_streams.origin.storage.tail_cache import TailCachedStore
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.auth import AccessPolicy

logger = logging.getLogger(__name__)


@dataclass
class Region:
    router: RegionRouter
    replica: Replica
    task: asyncio.Task[None]

    async def close(self) -> None:
        await cancel_all([self.task])
        await self.replica.close()


async def open_region(
    config: EdgeConfig, session: aiohttp.ClientSession, registry: CollectorRegistry, policy: AccessPolicy
) -> Region:
    assert config.region is not None
    metrics = RegionMetrics(registry, config.region)
    link = Link(metrics.link_up)
    headers = {"Authorization": f"Bearer {config.origin_token}"} if config.origin_token else {}
    store = TailCachedStore(FileStore(config.replica_dir, fsync=True), 64 * 1024 * 1024)
    replica = Replica(
        store,
        config.origin,
        session,
        headers,
        PathPatterns(config.replicate),
        metrics,
        link,
        heartbeat=config.replica_heartbeat,
        idle=config.replica_idle,
    )
    await replica.start()
    changes = ChangeFollower(replica, link, config.link_heartbeat)
    # The replica answers reads with the origin's own handlers; their metrics stay private
    # (the edge exports ds_edge_* and ds_region_*; ds_origin_* is the origin's).
    local_config = OriginConfig(
        long_poll_timeout=config.long_poll_timeout,
        sse_max_age=config.sse_max_age,
        sse_keepalive=config.sse_keepalive,
        sse_client_buffer=config.sse_client_buffer,
        sse_write_timeout=config.sse_write_timeout,
    )
    local = StreamHandlers(
        replica.service,
        local_config,
        OriginMetrics(CollectorRegistry()),
        LiveLimiter(local_config.max_live_connections),
    )
    router = RegionRouter(config.region, replica, changes, local, link, metrics, policy)
    logger.info(
        "region %s: replica in %s, %d streams held, replicating %s",
        config.region,
        config.replica_dir,
        len(replica.registry.by_path),
        ", ".join(config.replicate) or "streams on first read",
    )
    task = spawn(changes.run(), name="region-change-feed")
    # Start serving once the link is up (or clearly is not: then serve what the replica holds).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(config.link_heartbeat * 3):
            await link.wait_up()
    return Region(router, replica, task)
