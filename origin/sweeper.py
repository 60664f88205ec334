"""Background upkeep: expire streams whose time is up (reclaiming their space), persist access times.

Expiry is also decided on every request, to the millisecond; the sweeper only makes sure that
streams nobody asks about still give their disk space back.
"""

from __future__ import annotations

import asyncio
import logging

from plugin_streams.origin.registry import is_expired
from plugin_streams.origin.service import StreamService

logger = logging.getLogger(__name__)


async def sweep_once(service: StreamService) -> int:
    now = service.clock_ms()
    registry = service.registry
    expired = [state for state in registry.by_path.values() if is_expired(state, now, sliding=registry.sliding_expiry)]
    for state in expired:
        registry.expire(state)
    for state in list(registry.by_path.values()):
        if state.config.retention is not None:
            service.apply_retention(state, now)
    await service.store.flush_access_times()
    return len(expired)


async def sweep_forever(service: StreamService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_once(service)
        except Exception:
            logger.exception("expiry sweep failed")
