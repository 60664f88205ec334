"""The cache's background upkeep: following the origin's change feed and reporting cached reads.

Both ask the current origin (edge.origins) and report its failures, so they move with the edge.

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
from plugin_streams.edge.origins import Origins
from plugin_streams.edge.touches import TouchReporter
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.tasks import spawn


def start_upkeep(
    config: EdgeConfig,
    origins: Origins,
    session: aiohttp.ClientSession,
    cache: ChunkCache,
    metrics: EdgeMetrics,
    forget: Callable[[str], None],
) -> list[asyncio.Task[Any]]:
    """Start following deletions (`forget(path)` for each) and reporting reads of capped chunks, both
    with the current origin; and, with several origins, asking the downed ones whether they are back."""
    headers = {h.AUTHORIZATION: f"Bearer {config.origin_token}"} if config.origin_token else {}
    feed = Invalidation(
        session,
        origins,
        headers,
        cache.freshness,
        forget,
        config.link_heartbeat,
        failed=metrics.upstream_errors.labels("change_feed").inc,
    )
    touches = TouchReporter(
        session,
        origins,
        headers,
        cache.freshness,
        metrics.touch_reports.inc,
        failed=metrics.upstream_errors.labels("touch").inc,
    )
    metrics.change_feed.set_function(lambda: 1 if cache.freshness.following else 0)
    cache.on_capped_read = touches.note
    tasks = [spawn(feed.run(), name="edge-change-feed"), spawn(touches.run(), name="edge-touch-reports")]
    if len(origins.all) > 1:  # (one origin: nowhere else to go, so nothing to probe for)
        tasks.append(spawn(origins.probe(session), name="edge-origin-probe"))
    return tasks
