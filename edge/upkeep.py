"""The cache's background upkeep: following the origin's change feed and reporting cached reads.

Both talk to the origin's replication API with the edge's --origin-token (when it has one), as a
regional replica does; both degrade to a documented bound when the origin refuses
(edge.freshness).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.invalidation import Invalidation
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.touches import TouchReporter
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.tasks import spawn


def start_upkeep(
    config: EdgeConfig,
    session: aiohttp.ClientSession,
    cache: ChunkCache,
    metrics: EdgeMetrics,
    forget: Callable[[str], None],
) -> list[asyncio.Task[Any]]:
    """Start following deletions (`forget(path)` for each) and reporting reads of capped chunks."""
    headers = {h.AUTHORIZATION: f"Bearer {config.origin_token}"} if config.origin_token else {}
    feed = Invalidation(
        session,
        config.origin,
        headers,
        cache.freshness,
        forget,
        config.link_heartbeat,
        failed=metrics.upstream_errors.labels("change_feed").inc,
    )
    touches = TouchReporter(
        session,
        config.origin,
        headers,
        cache.freshness,
        metrics.touch_reports.inc,
        failed=metrics.upstream_errors.labels("touch").inc,
    )
    metrics.change_feed.set_function(lambda: 1 if cache.freshness.following else 0)
    cache.on_capped_read = touches.note
    return [spawn(feed.run(), name="edge-change-feed"), spawn(touches.run(), name="edge-touch-reports")]
