"""Request metrics are declared once, and both servers still expose them under the names that
deploy/ (alert rules, dashboards) and the tests read."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from yarl import URL

from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.shared.aio.observe import Observer
from plugin_streams.shared.aio.request_metrics import LATENCY_BUCKETS, VERSION, RequestMetrics


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


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/streams/api/v1/streams/orders/append", "rest_append"),
        ("GET", "/streams/api/v1/streams/orders/read", "rest_read"),
        ("GET", "/streams/api/v1/streams/a/b/tail", "rest_tail"),
        ("POST", "/streams/api/v1/streams", "rest_streams"),
        ("GET", "/streams/api/v1/streams", "rest_streams"),
        ("DELETE", "/streams/api/v1/streams/orders", "rest_streams"),
        ("GET", "/readyz", "readyz"),
        ("GET", "/ui/", "other"),
        ("PUT", "/kv/api/v1/app/keys", "kv_keys"),
        ("POST", "/kv/api/v1/app/atomic", "kv_atomic"),
        ("GET", "/kv/api/v1/some-db/watch", "kv_watch"),
        ("POST", "/kv/api/v1/app/queue/groups/billing/ack", "kv_queue"),
        ("GET", "/kv/api/v1/app/anything-else", "kv_other"),
    ],
)
def test_rest_requests_have_routes_of_their_own(method: str, path: str, route: str) -> None:
    registry = CollectorRegistry()
    Observer(OriginMetrics(registry), access_log=False).record(method, URL(path), 200, 0, 0.001, None)
    text = generate_latest(registry).decode()
    assert f'ds_origin_http_requests_total{{method="{method}",route="{route}",status="200"}} 1.0' in text


@pytest.mark.parametrize("server", [OriginMetrics, EdgeMetrics])
async def test_process_and_build_metrics(server: type[RequestMetrics]) -> None:
    registry = CollectorRegistry()
    metrics = server(registry)
    text = generate_latest(registry).decode()
    assert f'ds_build_info{{version="{VERSION}"}} 1.0' in text
    assert 'python_info{implementation="CPython"' in text
    assert "process_resident_memory_bytes" not in text  # read in a thread, before a scrape
    await metrics.process.refresh()
    lines = generate_latest(registry).decode().splitlines()
    samples = {line.split()[0]: float(line.split()[1]) for line in lines if not line.startswith("#")}
    assert samples["process_resident_memory_bytes"] > 1024 * 1024
    assert samples["process_open_fds"] >= 3
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_max_fds"] >= samples["process_open_fds"]


def test_the_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert VERSION == version("plugin-streams") != "unknown"
