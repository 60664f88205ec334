"""Per-request observation: Prometheus counters and latency, and one structured access-log line.

The outermost middleware, so it sees the status that was really sent (after error mapping).
Live reads are measured until their response ends.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.aio.http_errors import Handler

access_logger = logging.getLogger("plugin_streams.access")


class RequestMetrics(Protocol):
    requests: object
    latency: object


def route_of(path: str) -> str:
    """A bounded route label: never the stream path itself."""
    if path.startswith("/v1/stream/"):
        return "stream"
    if path in ("/metrics", "/healthz", "/readyz"):
        return path[1:]
    return "other"


def observe_middleware(metrics: RequestMetrics, *, access_log: bool) -> web.middleware:  # type: ignore[valid-type]
    requests = metrics.requests
    latency = metrics.latency
    # labels() costs a lock and a lookup per call: keep the children (few: one per method, route and status).
    counters: dict[tuple[str, str, int], Any] = {}
    timers: dict[tuple[str, str], Any] = {}

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        size = 0
        try:
            response = await handler(request)
            status = response.status
            size = response.body_length if response.prepared else len(getattr(response, "body", b"") or b"")
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_of(request.path)
            counter = counters.get((request.method, route, status))
            if counter is None:
                counter = counters[(request.method, route, status)] = requests.labels(  # type: ignore[attr-defined]
                    request.method, route, str(status)
                )
            counter.inc()
            timer = timers.get((request.method, route))
            if timer is None:
                timer = timers[(request.method, route)] = latency.labels(request.method, route)  # type: ignore[attr-defined]
            timer.observe(elapsed)
            if access_log:
                access_logger.info(
                    'method=%s path="%s" query="%s" status=%d bytes=%d duration_ms=%.2f remote=%s',
                    request.method,
                    request.path,
                    request.query_string,
                    status,
                    size,
                    elapsed * 1000,
                    request.remote,
                )

    return observe


def metrics_handler(registry: CollectorRegistry) -> Handler:
    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        response.headers["Cache-Control"] = "no-store"
        return response

    return metrics
