"""Every metric the dashboard and the alert rules read is one the servers export, under that name.

A renamed metric (or a counter's `_total`, a histogram's `_bucket` forgotten) would leave a panel
empty and an alert silent for ever, with no error anywhere. The names are taken from the servers'
own registries (origin, edge, region, the postgres engine's, and the process collectors), not from
a list kept by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.storage.postgres.metrics import PostgresMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "plugin-streams.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TESTS = DEPLOY / "prometheus" / "rules.test.yml"
#: A metric name in an expression (not part of a recording rule's `level:metric:operations` name).
NAME = re.compile(r"(?<![:\w])((?:ds|process|python)_[a-z0-9_]+)(?![:\w])")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


async def exported_names() -> set[str]:
    names: set[str] = set()
    for make in (OriginMetrics, EdgeMetrics):
        registry = CollectorRegistry()
        metrics = make(registry)
        if make is EdgeMetrics:
            RegionMetrics(registry, "eu")  # a regional replica's, in the edge's registry
        else:
            PostgresMetrics(registry)  # the postgres engine's, in the origin's registry
        await metrics.process.refresh()
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
    return names


def referenced(path: Path) -> set[str]:
    return set(NAME.findall(path.read_text()))


async def test_the_dashboard_reads_only_exported_metrics() -> None:
    names = referenced(DASHBOARD)
    assert {"ds_edge_upstream_errors_total", "process_resident_memory_bytes", "ds_build_info"} <= names
    assert {"ds_pg_pool_in_use", "ds_pg_notify_lag_seconds_bucket", "ds_pg_errors_total"} <= names
    assert names - await exported_names() == set()


async def test_the_rules_and_their_tests_read_only_exported_metrics() -> None:
    names = referenced(RULES) | referenced(RULES_TESTS)
    assert {"ds_region_replication_lag_bytes", "process_open_fds", "ds_edge_origin_reachable"} <= names
    assert {"ds_pg_listener_connected", "ds_pg_pool_size", "ds_pg_append_conflicts_total"} <= names
    assert names - await exported_names() == set()
