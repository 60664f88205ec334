"""Per-request observation: Prometheus counters and latency, and one structured access-log line.

The outermost middleware, so it sees the status that was really sent (after error mapping).
Live reads are measured until their response ends. The fast lane records its answers through
the same Observer (OBSERVER in the app), so they count and log like any other.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from yarl import URL

from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import Handler
from plugin_streams.shared.aio.request_metrics import ProcessMetrics, RequestMetrics
from plugin_streams.shared.kv.routes import kv_resource
from plugin_streams.shared.rest_routes import ACTIONS, rest_resource

access_logger = logging.getLogger("plugin_streams.access")


def route_of(path: str) -> str:
    """A bounded route label: never the stream path itself.

    `stream` (the protocol), `rest_append`, `rest_read`, `rest_tail` and `rest_streams` (the REST
    API's create, list, describe and delete), `kv_keys`, `kv_get-many`, `kv_list`, `kv_atomic`,
    `kv_watch`, `kv_queue` and `kv_other` (the KV API), `metrics`, `healthz`, `readyz`, else `other`.
    """
    if path.startswith("/v1/stream/"):
        return "stream"
    resource = rest_resource(path)
    if resource is not None:
        return _REST_ROUTES[resource]
    kv = kv_resource(path)
    if kv is not None:
        return "kv_" + kv
    if path in ("/metrics", "/healthz", "/readyz"):
        return path[1:]
    return "other"


_REST_ROUTES: Final = {resource: f"rest_{resource}" for resource in (*ACTIONS, "streams")}


class Observer:
    """Counts one answered request and writes its access-log line.

    The observe middleware records aiohttp's answers through it, and the fast lane
    (shared.aio.fast_lane) its own, so both appear alike in metrics and in the access log.
    """

    __slots__ = ("_counters", "_timers", "access_log", "latency", "requests")

    def __init__(self, metrics: RequestMetrics, *, access_log: bool) -> None:
        self.requests = metrics.requests
        self.latency = metrics.latency
        self.access_log = access_log
        # labels() costs a lock and a lookup per call: keep the children (few: one per method, route and status).
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}

    def record(self, method: str, url: URL, status: int, size: int, seconds: float, remote: str | None) -> None:
        """`url` is the request's relative URL (aiohttp's `Request.rel_url`)."""
        path = url.path
        route = route_of(path)
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = self.requests.labels(method, route, str(status))
        counter.inc()
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = self.latency.labels(method, route)
        timer.observe(seconds)
        if self.access_log:
            access_logger.info(
                'method=%s path="%s" query="%s" status=%d bytes=%d duration_ms=%.2f remote=%s',
                method,
                path,
                url.query_string,
                status,
                size,
                seconds * 1000,
                remote,
            )


#: The app's Observer, for answers written outside the middleware (the fast lane's).
OBSERVER: Final = web.AppKey("observer", Observer)


def observe_middleware(metrics: RequestMetrics, *, access_log: bool) -> Middleware:
    return observing(Observer(metrics, access_log=access_log))


def observing(observer: Observer) -> Middleware:
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
            observer.record(
                request.method, request.rel_url, status, size, time.perf_counter() - started, request.remote
            )

    return observe


def metrics_handler(registry: CollectorRegistry, process: ProcessMetrics | None = None) -> Handler:
    """/metrics of `registry`; `process` (RequestMetrics.process) is read in a thread first."""

    async def metrics(request: web.Request) -> web.Response:
        if process is not None:
            await process.refresh()
        response = web.Response(body=generate_latest(registry))
        response.headers[h.CONTENT_TYPE] = CONTENT_TYPE_LATEST
        response.headers[h.CACHE_CONTROL] = caching.NO_STORE
        return response

    return metrics
