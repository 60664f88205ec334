"""Request metrics are declared once, and both servers still expose them under the names that
deploy/ (alert rules, dashboards) and the tests read."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from yarl import URL

from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.shared.aio.observe import Observer
from plugin_streams.shared.aio.request_metrics import LATENCY_BUCKETS, RequestMetrics


@pytest.mark.parametrize(("server", "prefix"), [(OriginMetrics, "ds_origin"), (EdgeMetrics, "ds_edge")])
def test_each_server_exposes_the_request_metrics_under_its_prefix(server: type[RequestMetrics], prefix: str) -> None:
    registry = CollectorRegistry()
    metrics = server(registry)
    Observer(metrics, access_log=False).record("GET", URL("/v1/stream/a"), 200, 3, 0.002, None)
    text = generate_latest(registry).decode()
    assert f'{prefix}_http_requests_total{{method="GET",route="stream",status="200"}} 1.0' in text
    assert f'{prefix}_http_request_seconds_bucket{{le="0.0025",method="GET",route="stream"}} 1.0' in text
    assert f'{prefix}_http_request_seconds_bucket{{le="60.0",method="GET",route="stream"}} 1.0' in text


def test_the_buckets_span_half_a_millisecond_to_a_minute() -> None:
    assert LATENCY_BUCKETS[0] == 0.0005 and LATENCY_BUCKETS[-1] == 60
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
