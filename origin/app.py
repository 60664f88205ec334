"""build_app: the origin's aiohttp application, composed (never subclassed).

The store, the service and the background sweeper live in cleanup_ctx and close in reverse
order; on_shutdown ends live responses first (long-polls answer 204, SSE sends a last control
event) so that clients resume elsewhere while the process drains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from origin.config import OriginConfig
from origin.handlers import StreamHandlers
from origin.service import StreamService
from origin.storage import FileStore, MemoryStore, Store
from origin.sweeper import sweep_forever
from shared.aio.cors import add_cors_routes, security_headers
from shared.aio.http_errors import error_middleware
from shared.aio.tasks import cancel_all, spawn

logger = logging.getLogger(__name__)
SERVICE: web.AppKey[StreamService] = web.AppKey("service", StreamService)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def make_store(config: OriginConfig) -> Store:
    if config.engine == "memory":
        return MemoryStore()
    return FileStore(config.data_dir, fsync=config.fsync == "always")


def build_app(
    config: OriginConfig,
    *,
    store: Store | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
) -> web.Application:
    app = web.Application(client_max_size=config.max_body, middlewares=[error_middleware])
    service = StreamService(store or make_store(config), clock_ms)
    app[SERVICE] = service
    handlers = StreamHandlers(service, config)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        started = time.monotonic()
        await service.start()
        logger.info(
            "origin ready: %d streams recovered in %.3f s (engine %s, data dir %s)",
            len(service.registry.by_generation),
            time.monotonic() - started,
            config.engine,
            config.data_dir,
        )
        sweeper = spawn(sweep_forever(service, config.sweep_interval), name="sweeper")
        yield
        await cancel_all([sweeper])
        await service.drain()
        await service.store.close()

    async def on_shutdown(app: web.Application) -> None:
        service.begin_shutdown()
        await asyncio.sleep(0)

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(security_headers)
    add_cors_routes(app)
    app.router.add_route("*", "/v1/stream/{path:.+}", handlers.dispatch)
    return app
