"""Region metrics: replication lag in bytes and seconds, streams replicated, link state, resyncs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RegionMetrics:
    def __init__(self, registry: CollectorRegistry, region: str) -> None:
        self.lag_bytes = Gauge(
            "ds_region_replication_lag_bytes",
            "Bytes the origin holds that this region's replica does not yet (streams followed)",
            ["region"],
            registry=registry,
        ).labels(region)
        self.lag_seconds = Gauge(
            "ds_region_replication_lag_seconds",
            "Age of the oldest change the origin holds and this region's replica has not applied yet, "
            "0 when nothing is behind (counted from the origin's accept time; history copied by a "
            "backfill counts from when its copy began). Refreshed every touch interval.",
            ["region"],
            registry=registry,
        ).labels(region)
        self.delay = Histogram(
            "ds_region_replication_delay_seconds",
            "Per record: origin accept time to durable in the replica",
            ["region"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        ).labels(region)
        self.streams = Gauge(
            "ds_region_streams_replicated", "Streams this region's replica follows", ["region"], registry=registry
        ).labels(region)
        self.link_up = Gauge(
            "ds_region_link_up", "1 while the change feed from the origin is alive", ["region"], registry=registry
        ).labels(region)
        self.resyncs = Counter(
            "ds_region_resyncs", "Full reconciliations against the origin's stream list", ["region"], registry=registry
        ).labels(region)
        self.records = Counter(
            "ds_region_replicated_records", "Records made durable in the replica", ["region"], registry=registry
        ).labels(region)
        self.local_reads = Counter(
            "ds_region_local_reads", "Reads answered from the regional replica", ["region"], registry=registry
        ).labels(region)
        self.refused_writes = Counter(
            "ds_region_refused_writes", "Writes refused with 503 while the link was down", ["region"], registry=registry
        ).labels(region)
