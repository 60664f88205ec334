"""The origin's Prometheus metrics, created once against an injected registry.

The request counter and latency histogram come from shared.aio.request_metrics, as the edge's do.

Labels are bounded (method, route, status, mode); a stream path is never a label. The KV metrics'
database and group labels are bounded too (origin/kv/metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from plugin_streams.origin.kv.metrics import KvMetrics
from plugin_streams.shared.aio.request_metrics import LATENCY_BUCKETS, RequestMetrics


class OriginMetrics(RequestMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "ds_origin")
        self.appends = Counter("ds_origin_appends", "Records appended durably", registry=registry)
        self.appended_bytes = Counter("ds_origin_appended_bytes", "Payload bytes appended durably", registry=registry)
        self.commit_seconds = Histogram(
            "ds_origin_commit_seconds",
            "Time to write and fdatasync one group-commit batch",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_batch = Histogram(
            "ds_origin_commit_batch_records",
            "Records per group-commit batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
            registry=registry,
        )
        self.live = Gauge("ds_origin_live_connections", "Open live reads", ["mode"], registry=registry)
        self.rejected = Counter("ds_origin_rejected", "Requests refused by a limit", ["reason"], registry=registry)
        self.recovered_streams = Gauge("ds_origin_recovered_streams", "Streams found at start-up", registry=registry)
        self.recovery_discarded = Gauge(
            "ds_origin_recovery_discarded_bytes", "Torn or corrupt bytes cut off at start-up", registry=registry
        )
        self.ready = Gauge("ds_origin_ready", "1 once recovery has finished and the origin serves", registry=registry)
        self._streams = Gauge("ds_origin_streams", "Streams reachable by path", registry=registry)
        self._disk = Gauge("ds_origin_disk_bytes", "Bytes of stream logs on disk", registry=registry)
        self.kv = KvMetrics(registry)  # the KV store and its queues (ds_kv_*)

    def watch(self, streams: Callable[[], int], disk_bytes: Callable[[], int]) -> None:
        self._streams.set_function(streams)
        self._disk.set_function(disk_bytes)

    def on_batch(self, records: int, payload_bytes: int, seconds: float) -> None:
        self.appends.inc(records)
        self.appended_bytes.inc(payload_bytes)
        self.commit_batch.observe(records)
        self.commit_seconds.observe(seconds)
