"""build_app: the origin's aiohttp application, composed (never subclassed).

Middlewares, outermost first: observe (metrics, access log) → errors → access control → rate
limit → handler. The store, the service and the background sweeper live in cleanup_ctx and
close in reverse order; on_shutdown ends live responses first (long-polls answer 204, SSE
responses end) so that clients resume elsewhere while the process drains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.fast_appends import AppendLane
from plugin_streams.origin.handlers import StreamHandlers
from plugin_streams.origin.kv.databases import KvDatabases
from plugin_streams.origin.kv.routes import add_kv_routes
from plugin_streams.origin.kv.snapshotter import snapshotter_for
from plugin_streams.origin.limits import LiveLimiter, RateLimiter
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.page import add_page_routes
from plugin_streams.origin.replication.routes import add_replication_routes
from plugin_streams.origin.rest import add_rest_routes
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import FileStore, MemoryStore, Store
from plugin_streams.origin.storage.postgres.metrics import PostgresMetrics
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.storage.tail_cache import PER_STREAM_BYTES, TailCachedStore
from plugin_streams.origin.subscriptions.routes import add_subscription_routes
from plugin_streams.origin.sweeper import sweep_forever
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio import expect
from plugin_streams.shared.aio.access import access_middleware, load_policy, request_access
from plugin_streams.shared.aio.cors import add_cors_routes, security_headers
from plugin_streams.shared.aio.fast_lane import LANE
from plugin_streams.shared.aio.forwarded import TrustedProxies
from plugin_streams.shared.aio.http_errors import Handler, error_middleware
from plugin_streams.shared.aio.observe import OBSERVER, Observer, metrics_handler, observing
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.clock import WallClock, wall_clock_ms

logger = logging.getLogger(__name__)
SERVICE: web.AppKey[StreamService] = web.AppKey("service", StreamService)
METRICS: web.AppKey[OriginMetrics] = web.AppKey("metrics", OriginMetrics)


def make_store(config: OriginConfig) -> Store:
    if config.engine == "postgres":
        if not config.database_url:
            raise ValueError("--engine postgres needs --database-url (or DS_ORIGIN_DATABASE_URL)")
        # No tail cache: its records would be this origin's appends only, not the other origins'.
        return PostgresStore(config.database_url, pool_size=config.pg_pool_size, read_timeout=config.pg_read_timeout)
    engine: Store = (
        MemoryStore() if config.engine == "memory" else FileStore(config.data_dir, fsync=config.fsync == "always")
    )
    if config.tail_cache_bytes <= 0:
        return engine
    # A stream's tail holds at least its current chunk: a reader catching up from the chunk's start
    # is answered from memory too.
    return TailCachedStore(engine, config.tail_cache_bytes, max(PER_STREAM_BYTES, config.chunk_size))


def rate_limit_middleware(limiter: RateLimiter, proxies: TrustedProxies) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        principal = request_access(request).principal
        # Behind trusted proxies (edges, a CDN) the client is the one their X-Forwarded-For names.
        limiter.check(f"token:{principal}" if principal else f"ip:{proxies.client(request)}")
        return await handler(request)

    return rate_limit


def build_app(
    config: OriginConfig,
    *,
    store: Store | None = None,
    clock_ms: WallClock = wall_clock_ms,
    registry: CollectorRegistry | None = None,
    policy: AccessPolicy | None = None,
) -> web.Application:
    expect.install()  # before any route takes aiohttp's default Expect handler
    registry = registry if registry is not None else CollectorRegistry()
    metrics = OriginMetrics(registry)
    policy = policy if policy is not None else load_policy(config.auth_config)
    observer = Observer(metrics, access_log=config.access_log)
    middlewares = [observing(observer), error_middleware]
    if policy.enabled:  # open (development) mode: every request is allowed and public anyway
        middlewares.append(access_middleware(policy))
    if config.rate_limit > 0:
        middlewares.append(
            rate_limit_middleware(
                RateLimiter(config.rate_limit, config.rate_burst, on_reject=metrics.rejected.labels("rate").inc),
                TrustedProxies(config.trusted_proxies),
            )
        )
    app = web.Application(client_max_size=config.max_body, middlewares=middlewares)
    store = store or make_store(config)
    service = StreamService(store, clock_ms, on_batch=metrics.on_batch, compact_min_bytes=config.compact_min_bytes)
    if isinstance(store, PostgresStore):
        store.metrics = PostgresMetrics(registry)
    app[SERVICE] = service
    app[METRICS] = metrics
    if config.fast_appends and not policy.enabled and config.rate_limit <= 0:
        # Its answers skip the middlewares: only where the ones it would skip decide nothing
        # (no access policy, no rate limit); observe's work is the connection's (OBSERVER).
        app[LANE] = AppendLane(service, max_body=config.max_body)
        app[OBSERVER] = observer
    handlers = StreamHandlers(
        service,
        config,
        metrics,
        LiveLimiter(config.max_live_connections, on_reject=metrics.rejected.labels("live_connections").inc),
    )
    metrics.watch(lambda: len(service.registry.by_path), store.disk_bytes)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        started = time.monotonic()
        await service.start()
        metrics.recovered_streams.set(len(service.registry.by_generation))
        metrics.recovery_discarded.set(getattr(store, "discarded_bytes", 0))
        metrics.ready.set(1)
        service.ready = True
        logger.info(
            "origin ready: %d streams recovered in %.3f s (engine %s, data dir %s)",
            len(service.registry.by_generation),
            time.monotonic() - started,
            config.engine,
            config.data_dir,
        )
        sweeper = spawn(sweep_forever(service, config.sweep_interval), name="sweeper")
        yield
        metrics.ready.set(0)
        await cancel_all([sweeper])
        await service.drain()
        await service.stop()
        await service.store.close()

    async def on_shutdown(app: web.Application) -> None:
        metrics.ready.set(0)
        service.begin_shutdown()
        await asyncio.sleep(0)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={h.CACHE_CONTROL: caching.NO_STORE})

    async def readyz(request: web.Request) -> web.Response:
        status = 200 if service.ready and not service.stopping else 503
        return web.Response(status=status, text="ready\n" if status == 200 else "not ready\n")

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(security_headers)
    add_cors_routes(app)
    add_page_routes(app)
    app.router.add_get("/metrics", metrics_handler(registry, metrics.process), allow_head=False)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readyz, allow_head=False)
    add_subscription_routes(app, service, config)  # before the streams: `__ds` is reserved
    app.router.add_route("*", "/v1/stream/{path:.+}", handlers.dispatch)
    add_rest_routes(app, service, config, policy=policy, limiter=handlers.live.limit, metrics=metrics)
    databases = KvDatabases(service, on_durable=metrics.kv.on_durable, snapshots=snapshotter_for(config))
    metrics.kv.watch(databases.all)
    add_kv_routes(app, databases, handlers)
    add_replication_routes(app, service, policy, config.chunk_size)
    return app
