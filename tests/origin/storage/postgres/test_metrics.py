"""PostgresMetrics: the ds_pg_* names the dashboard and alerts read, the pool read at scrape time,
histogram buckets where commit latency and notify lag fall, every error kind exported at 0."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from plugin_streams.origin.storage.postgres.metrics import ERROR_KINDS, PostgresMetrics


@dataclass
class FakePool:
    """Stands for an asyncpg.Pool: `size` connections open, `idle` of them not lent out."""

    size: int
    idle: int

    def get_size(self) -> int:
        return self.size

    def get_idle_size(self) -> int:
        return self.idle


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What Prometheus would read: the exposition text parsed back."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return scrape(registry)[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> PostgresMetrics:
    return PostgresMetrics(registry)


def test_the_exported_names_are_those_of_the_design(registry: CollectorRegistry, metrics: PostgresMetrics) -> None:
    names = {name for name, _ in scrape(registry)}
    assert {
        "ds_pg_pool_size",
        "ds_pg_pool_in_use",
        "ds_pg_commit_seconds_bucket",
        "ds_pg_commit_seconds_count",
        "ds_pg_append_conflicts_total",
        "ds_pg_notify_lag_seconds_bucket",
        "ds_pg_listener_connected",
        "ds_pg_errors_total",
    } <= names
    assert {name for name in names if not name.startswith("ds_pg_")} == set()


def test_the_pool_is_read_at_every_scrape(registry: CollectorRegistry, metrics: PostgresMetrics) -> None:
    assert (value(registry, "ds_pg_pool_size"), value(registry, "ds_pg_pool_in_use")) == (0, 0)
    pool = FakePool(size=16, idle=16)
    metrics.watch_pool(pool)
    assert (value(registry, "ds_pg_pool_size"), value(registry, "ds_pg_pool_in_use")) == (16, 0)
    pool.idle = 3  # 13 lent out
    assert (value(registry, "ds_pg_pool_size"), value(registry, "ds_pg_pool_in_use")) == (16, 13)
    pool.size, pool.idle = 9, 0  # connections lost, the rest all busy
    assert (value(registry, "ds_pg_pool_size"), value(registry, "ds_pg_pool_in_use")) == (9, 9)


def test_a_replaced_pool_is_the_one_exported(registry: CollectorRegistry, metrics: PostgresMetrics) -> None:
    metrics.watch_pool(FakePool(size=16, idle=2))
    metrics.watch_pool(FakePool(size=4, idle=4))
    assert (value(registry, "ds_pg_pool_size"), value(registry, "ds_pg_pool_in_use")) == (4, 0)


@pytest.mark.parametrize(
    ("seconds", "first_bucket"),
    [(0.0002, "0.00025"), (0.0004, "0.0005"), (0.03, "0.05"), (4.0, "5.0"), (7.0, "+Inf")],
)
def test_a_commit_falls_in_the_bucket_of_its_latency(
    registry: CollectorRegistry, metrics: PostgresMetrics, seconds: float, first_bucket: str
) -> None:
    metrics.committed(seconds)
    samples = scrape(registry)
    buckets = {
        dict(labels)["le"]: count for (name, labels), count in samples.items() if name == "ds_pg_commit_seconds_bucket"
    }
    ordered = sorted(buckets, key=lambda le: float(le))
    assert [buckets[le] for le in ordered] == [0] * ordered.index(first_bucket) + [1] * (
        len(ordered) - ordered.index(first_bucket)
    )
    assert samples[("ds_pg_commit_seconds_sum", ())] == pytest.approx(seconds)


def test_buckets_span_the_stated_ranges(registry: CollectorRegistry, metrics: PostgresMetrics) -> None:
    def bounds(histogram: str) -> list[float]:
        les = {dict(labels)["le"] for name, labels in scrape(registry) if name == f"{histogram}_bucket"}
        return sorted(float(le) for le in les if le != "+Inf")

    assert (bounds("ds_pg_commit_seconds")[0], bounds("ds_pg_commit_seconds")[-1]) == (0.00025, 5)
    assert (bounds("ds_pg_notify_lag_seconds")[0], bounds("ds_pg_notify_lag_seconds")[-1]) == (0.001, 10)


def test_notify_lag_is_observed_and_a_clock_ahead_counts_as_zero(
    registry: CollectorRegistry, metrics: PostgresMetrics
) -> None:
    metrics.notified(0.004)
    metrics.notified(-0.5)  # the sender's clock runs ahead of ours
    assert value(registry, "ds_pg_notify_lag_seconds_count") == 2
    assert value(registry, "ds_pg_notify_lag_seconds_sum") == pytest.approx(0.004)
    assert value(registry, "ds_pg_notify_lag_seconds_bucket", le="0.001") == 1
    assert value(registry, "ds_pg_notify_lag_seconds_bucket", le="0.005") == 2


def test_conflicts_count_up(registry: CollectorRegistry, metrics: PostgresMetrics) -> None:
    assert value(registry, "ds_pg_append_conflicts_total") == 0
    metrics.conflict()
    metrics.conflict()
    assert value(registry, "ds_pg_append_conflicts_total") == 2


def test_the_listener_gauge_follows_its_connection(registry: CollectorRegistry, metrics: PostgresMetrics) -> None:
    assert value(registry, "ds_pg_listener_connected") == 0  # not connected until told so
    metrics.listener(True)
    assert value(registry, "ds_pg_listener_connected") == 1
    metrics.listener(False)
    assert value(registry, "ds_pg_listener_connected") == 0


def test_every_error_kind_is_exported_from_the_start_and_counted_apart(
    registry: CollectorRegistry, metrics: PostgresMetrics
) -> None:
    assert {kind: value(registry, "ds_pg_errors_total", kind=kind) for kind in ERROR_KINDS} == {
        "connect": 0,
        "query": 0,
        "listener": 0,
    }
    metrics.error("query")
    metrics.error("query")
    metrics.error("listener")
    assert {kind: value(registry, "ds_pg_errors_total", kind=kind) for kind in ERROR_KINDS} == {
        "connect": 0,
        "query": 2,
        "listener": 1,
    }
