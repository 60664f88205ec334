"""The HTTP request metrics every server declares, once: a counter and a latency histogram.

Each server names them under its own prefix (`ds_origin`, `ds_edge`), with the same labels:
`<prefix>_http_requests{method,route,status}` and `<prefix>_http_request_seconds{method,route}`.
Dashboards and alert rules (deploy/) read these names, so they must not drift apart. Labels are
bounded (shared.aio.observe.route_of); a stream path is never a label.

Every server's registry also describes the process, with prometheus-client's own collectors:
`process_*` (resident memory, CPU seconds, open and maximum file descriptors, start time; on
Linux, from /proc), `python_info`, and `ds_build_info{version} 1`, so a dashboard can tell
which version each instance runs and an alert can join on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from importlib import metadata
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, PlatformCollector, ProcessCollector
from prometheus_client.registry import Collector

#: Buckets (seconds) of every latency histogram of both servers: from half a millisecond to a minute.
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

DISTRIBUTION: Final = "plugin-streams"


def installed_version() -> str:
    """The installed distribution's version ("unknown" when run from a tree that is not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


#: Read once, at import (the package metadata is a file: never read on the event loop).
VERSION: Final = installed_version()


class ProcessMetrics(Collector):
    """prometheus-client's ProcessCollector, read off the event loop.

    It reads /proc/self/{stat,status,limits,fd} on every collect: file I/O, which must not run on
    the loop (shared.aio.loop_watch). The scrape handler awaits refresh() (the reads, in a
    thread) and the registry then collects the snapshot it took.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._source: ProcessCollector | None = None  # made in the thread too: it reads /proc/stat
        self._latest: list[Metric] = []
        registry.register(self)

    def _read(self) -> list[Metric]:
        if self._source is None:
            self._source = ProcessCollector(registry=None)
        return list(self._source.collect())

    async def refresh(self) -> None:
        self._latest = await asyncio.to_thread(self._read)

    def collect(self) -> Iterable[Metric]:
        return self._latest

    def describe(self) -> Iterable[Metric]:
        return ()  # names unknown until the first refresh; none clash with the servers' (process_*)


def describe_process(registry: CollectorRegistry) -> ProcessMetrics:
    """Process and platform metrics, and `ds_build_info{version} 1`, in `registry`."""
    PlatformCollector(registry=registry)
    # (No `role` label: Prometheus targets carry one, deploy/prometheus/prometheus.yml; `job` tells them apart.)
    build = Gauge("ds_build_info", "The running build: always 1, its labels say which", ["version"], registry=registry)
    build.labels(VERSION).set(1)
    return ProcessMetrics(registry)


class RequestMetrics:
    """What the observe middleware and the fast lane record for each answered request."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.process = describe_process(registry)
        self.requests = Counter(
            f"{prefix}_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            f"{prefix}_http_request_seconds",
            "Time to answer a request (live reads: until the response ends)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
