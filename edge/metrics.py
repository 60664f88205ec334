"""The edge's Prometheus metrics, created once against an injected registry (bounded labels).

The request counter and latency histogram come from shared.aio.request_metrics, as the origin's do.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from yarl import URL

from plugin_streams.edge.origin_health import OriginHealth
from plugin_streams.edge.origins import Origins
from plugin_streams.shared.aio.request_metrics import LATENCY_BUCKETS, RequestMetrics


class EdgeMetrics(RequestMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "ds_edge")
        self.cache_hits = Counter("ds_edge_cache_hits", "Reads answered from the cache", ["tier"], registry=registry)
        self.cache_misses = Counter("ds_edge_cache_misses", "Cacheable reads not in the cache", registry=registry)
        self.upstream = Counter("ds_edge_upstream_requests", "Requests sent to the origin", ["kind"], registry=registry)
        # kind: write, head, catch_up, long_poll, sse, describe (REST list/describe), readiness,
        # change_feed, touch (edge.upstream.upstream_kind and the upkeep tasks).
        self.upstream_errors = Counter(
            "ds_edge_upstream_errors",
            "Origin requests that failed: no answer (refused, reset, timed out), a 5xx, or a live stream that broke",
            ["kind"],
            registry=registry,
        )
        self.origin_reachable = Gauge(
            "ds_edge_origin_reachable",
            "0 since a request to the origin (or a /readyz probe) got no answer, until one does; else 1",
            registry=registry,
        )
        # One child per configured --origin (edge.origins), none for anything else: bounded.
        self.origin_up = Gauge(
            "ds_edge_origin_up",
            "0 while this origin is marked down (no answer, or a 502/503/504) until it answers again; else 1",
            ["origin"],
            registry=registry,
        )
        self.origin_failovers = Counter(
            "ds_edge_origin_failovers",
            "Times the edge moved to another origin because its own failed",
            registry=registry,
        )
        self.long_poll_waiters = Gauge(
            "ds_edge_long_poll_waiters", "Clients waiting on a shared upstream long-poll", registry=registry
        )
        self.live_clients = Gauge("ds_edge_live_clients", "Open live client responses", ["mode"], registry=registry)
        self.sse_events = Counter("ds_edge_sse_events", "Events fanned out from upstream", registry=registry)
        self.delivery_lag = Histogram(
            "ds_edge_sse_fanout_seconds",
            "Time from receiving an upstream event to queueing it for every subscriber",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.slow_disconnects = Counter(
            "ds_edge_slow_client_disconnects", "SSE clients cut off for not keeping up", registry=registry
        )
        self.fast_lane = Counter(
            "ds_edge_fast_lane_answers",
            "Reads answered with rendered bytes, below aiohttp's request handling",
            ["kind"],
            registry=registry,
        )
        self.change_feed = Gauge(
            "ds_edge_change_feed_following",
            "1 while the origin's change feed is followed (deletions evict at once; 0: --cache-fallback-age)",
            registry=registry,
        )
        self.touch_reports = Counter(
            "ds_edge_touch_reports", "Stream paths reported to the origin as read from the cache", registry=registry
        )
        self._cache_bytes = Gauge("ds_edge_cache_bytes", "Bytes held by the cache", ["tier"], registry=registry)

    def watch(self, memory_bytes: Callable[[], int], disk_bytes: Callable[[], int]) -> None:
        self._cache_bytes.labels("memory").set_function(memory_bytes)
        self._cache_bytes.labels("disk").set_function(disk_bytes)

    def watch_origins(self, origins: Origins) -> None:
        """ds_edge_origin_up per configured origin, ds_edge_origin_reachable for them all (read at scrape time)."""
        self.origin_reachable.set_function(lambda: 1 if origins.any_reachable() else 0)
        for origin in origins.all:  # (a password in an --origin URL is no label's business)
            self.origin_up.labels(str(URL(origin.origin).with_password(None))).set_function(_up(origins, origin))


def _up(origins: Origins, origin: OriginHealth) -> Callable[[], float]:
    return lambda: 0 if origins.is_down(origin) else 1
