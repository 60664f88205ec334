"""Background upkeep: expire streams whose time is up (reclaiming their space), persist access times.

Expiry is also decided on every request, to the millisecond; the sweeper only makes sure that
streams nobody asks about still give their disk space back.
"""

from __future__ import annotations

import asyncio
import logging

from plugin_streams.origin.registry import is_expired
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage.base import StorageError
from plugin_streams.shared.errors import Unavailable

logger = logging.getLogger(__name__)


async def sweep_once(service: StreamService) -> int:
    if service.shared is not None:
        return await _sweep_shared(service)
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


async def _sweep_shared(service: StreamService) -> int:
    """With several origins: each persists its access times and applies retention to the streams
    it holds; the one elected by the advisory lock (origin.wakeups) expires streams nobody asks
    about, each only if the database agrees it is due."""
    assert service.shared is not None
    await service.shared.store.flush_access_times()
    await service.shared.store.refresh_disk_bytes()
    now = service.clock_ms()
    for state in list(service.registry.by_path.values()):
        if state.config.retention is not None:
            service.apply_retention(state, now)
    if not service.shared.wakeups.leader:
        return 0
    if service.shared.changes is not None:
        await service.shared.changes.feed.trim(service.shared.changes.window)
    expired = 0
    for path in await service.shared.store.expired(now):
        expired += await service.registry.find(path, now) is None
    return expired


async def sweep_forever(service: StreamService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_once(service)
        except (StorageError, Unavailable) as exc:
            logger.warning("expiry sweep skipped: %s", exc)  # the storage is away; said once a sweep
        except Exception:
            logger.exception("expiry sweep failed")
