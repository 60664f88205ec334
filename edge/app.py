"""build_app: the edge's aiohttp application, composed like the origin's.

Middlewares, outermost first: observe (metrics, access log) → errors → access control (when the
edge has the policy file) → handler. The origin ClientSession, the cache's disk tier and the
SSE hubs live in cleanup_ctx; on_shutdown ends live responses so clients move elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.config import EdgeConfig
from plugin_streams.edge.fanout import SSEFanout
from plugin_streams.edge.fast_reads import EdgeLane, FastReads
from plugin_streams.edge.freshness import Freshness
from plugin_streams.edge.handlers import EdgeHandlers
from plugin_streams.edge.kv_proxy import add_kv_routes
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.origins import Origins
from plugin_streams.edge.readiness import Readiness
from plugin_streams.edge.reads import EdgeReads
from plugin_streams.edge.region.setup import open_region
from plugin_streams.edge.rest.api import add_rest_routes
from plugin_streams.edge.upkeep import start_upkeep
from plugin_streams.edge.upstream import Upstream
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio import expect
from plugin_streams.shared.aio.access import access_middleware, load_policy
from plugin_streams.shared.aio.cors import add_cors_routes, security_headers
from plugin_streams.shared.aio.fast_lane import LANE
from plugin_streams.shared.aio.forwarded import forwarding_middleware
from plugin_streams.shared.aio.http_errors import error_middleware
from plugin_streams.shared.aio.observe import OBSERVER, Observer, metrics_handler, observing
from plugin_streams.shared.aio.tasks import cancel_all
from plugin_streams.shared.auth import AccessPolicy

logger = logging.getLogger(__name__)


def build_app(
    config: EdgeConfig, *, registry: CollectorRegistry | None = None, policy: AccessPolicy | None = None
) -> web.Application:
    expect.install()  # before any route takes aiohttp's default Expect handler
    registry = registry if registry is not None else CollectorRegistry()
    metrics = EdgeMetrics(registry)
    policy = policy if policy is not None else load_policy(config.auth_config, role="edge")
    observer = Observer(metrics, access_log=config.access_log)
    app = web.Application(client_max_size=2 * 1024 * 1024, middlewares=_middlewares(observer, policy))
    freshness = Freshness(config.cache_fallback_age)  # how long a cached copy may be served
    cache = ChunkCache(config.cache_memory, config.cache_dir, config.cache_disk, freshness)
    metrics.watch(lambda: cache.memory_bytes, lambda: cache.disk.bytes if cache.disk else 0)
    holder: dict[str, EdgeHandlers] = {}
    origins = Origins.of(config.origin, on_failover=metrics.origin_failovers.inc)  # which one is asked, and health
    metrics.watch_origins(origins)
    readiness = Readiness(lambda: holder["handlers"].upstream if "handlers" in holder else None)
    lane = EdgeLane()
    if config.fast_lane:  # plain cached reads, answered under aiohttp's request machinery
        app[LANE] = lane
        app[OBSERVER] = observer  # its answers count and log like the middleware's

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, keepalive_timeout=30)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        upstream = Upstream(origins, session, timeout=config.upstream_timeout, errors=metrics.upstream_errors)
        await cache.open()
        reads = EdgeReads(upstream, cache, metrics, config.long_poll_timeout)
        fanout = SSEFanout(upstream, reads, metrics, config)
        handlers = holder["handlers"] = EdgeHandlers(upstream, reads, fanout, cache, policy)
        handlers.public_url = config.public_url

        def forget(path: str) -> None:  # the origin deleted `path` (edge.invalidation)
            reads.wrote(path)  # its recent long-poll answers are no longer shared
            cache.drop_stream(path)  # (its SSE hubs end with the origin's SSE responses)

        upkeep = start_upkeep(config, origins, session, cache, metrics, forget)
        region = await open_region(config, origins, session, registry, policy) if config.region is not None else None
        if region is not None:
            handlers.region = region.router
            handlers.region_rest = region.rest
        else:  # a regional replica answers reads its own way
            lane.reads = FastReads(reads, cache, metrics, policy)
        logger.info(
            "edge ready: origin %s, cache %d bytes in memory", " then ".join(config.origin), config.cache_memory
        )
        yield
        lane.reads = None
        await cancel_all(upkeep)
        fanout.shutdown()
        if region is not None:
            await region.close()
        await session.close()

    async def on_shutdown(app: web.Application) -> None:
        readiness.stopping = True
        handlers = holder.get("handlers")
        if handlers is not None:
            _begin_shutdown(handlers)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        return await holder["handlers"].dispatch(request)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={h.CACHE_CONTROL: caching.NO_STORE})

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(security_headers)
    add_cors_routes(app)
    app.router.add_get("/metrics", metrics_handler(registry, metrics.process), allow_head=False)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readiness.handle, allow_head=False)
    app.router.add_route("*", "/v1/stream/{path:.+}", dispatch)
    add_rest_routes(app, lambda: holder["handlers"], config)
    add_kv_routes(app, lambda: holder["handlers"])
    return app


def _middlewares(observer: Observer, policy: AccessPolicy) -> list[Middleware]:
    middlewares: list[Middleware] = [observing(observer), error_middleware]
    if policy.enabled:
        middlewares.append(access_middleware(policy))
    middlewares.append(forwarding_middleware)  # the origin sees who each request is for (its rate limit)
    return middlewares


def _begin_shutdown(handlers: EdgeHandlers) -> None:
    """Answer what waits: long-polls get their answer now and SSE streams end, locally too."""
    handlers.fanout.shutdown()
    handlers.reads.shutdown()
    if handlers.region is not None:
        handlers.region.replica.begin_shutdown()
