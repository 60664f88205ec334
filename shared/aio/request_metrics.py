"""The HTTP request metrics every server declares, once: a counter and a latency histogram.

Each server names them under its own prefix (`ds_origin`, `ds_edge`), with the same labels:
`<prefix>_http_requests{method,route,status}` and `<prefix>_http_request_seconds{method,route}`.
Dashboards and alert rules (deploy/) read these names, so they must not drift apart. Labels are
bounded (shared.aio.observe.route_of); a stream path is never a label.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

#: Buckets (seconds) of every latency histogram of both servers: from half a millisecond to a minute.
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RequestMetrics:
    """What the observe middleware and the fast lane record for each answered request."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
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
