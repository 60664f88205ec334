"""The KV collector: per-database and per-group figures under bounded labels, the rest folded into `_other`.

In-process over real KvDatabase states (an index with keys, a queue fed through its codec by the
queue tests' log); the figures against a real origin are in test_metrics.py.
"""

from __future__ import annotations

from typing import cast

from prometheus_client import CollectorRegistry

from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.log import ChangeLog
from plugin_streams.origin.kv.metrics import OTHER, KvCollector, KvMetrics
from plugin_streams.origin.kv.queues import QueuedMessage, create_group, enqueue, lease, term
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import encode_value
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset
from tests.origin.kv.queues.log import QueueLog

NOW_MS = 10_000


def database(name: str, *, keys: int = 0, groups: tuple[str, ...] = (), ready: int = 0) -> KvDatabase:
    """A database holding `keys` keys and, in each group, `ready` messages enqueued at time 0."""
    db = KvDatabase(name, cast(ChangeLog, None), lambda: NOW_MS)
    db.index.install(
        ((encode_key([name, i]), encode_value(i), None) for i in range(keys)), Versionstamp.from_offset(Offset(1, 9)), 0
    )
    log = QueueLog()
    for group in groups:
        log.append(create_group(log.state, group, ""))
    for i in range(ready):
        log.append(enqueue(log.state, QueuedMessage(f"m{i:04d}", b"v", 0)))
    db.queue = log.state
    db.events_applied = keys + ready
    db.offset = Offset(1, 100 * (keys + ready))
    return db


def samples(collector: KvCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_each_database_and_group_by_name() -> None:
    first = database("app", keys=3, groups=("mail", "billing"), ready=2)
    found = samples(KvCollector(lambda: [first]))
    assert value(found, "ds_kv_databases") == 1
    assert value(found, "ds_kv_keys", db="app") == 3
    assert value(found, "ds_kv_commits_total", db="app") == 5
    assert value(found, "ds_kv_log_bytes", db="app") == 500
    for group in ("mail", "billing"):
        assert value(found, "ds_kv_queue_depth", db="app", group=group) == 2
        assert value(found, "ds_kv_queue_in_flight", db="app", group=group) == 0
        assert value(found, "ds_kv_queue_oldest_age_seconds", db="app", group=group) == NOW_MS / 1000


def test_leases_and_dead_letters_show_per_group() -> None:
    db = database("app", groups=("g", "h"), ready=3)
    leased = lease(db.queue, "g", "w", NOW_MS, 30_000)
    assert leased is not None
    db.queue.apply(leased, "x")
    second = lease(db.queue, "g", "w", NOW_MS, 30_000)
    assert second is not None
    db.queue.apply(second, "y")
    db.queue.apply(term(db.queue, "g", second.token, NOW_MS, "poison"), "z")
    found = samples(KvCollector(lambda: [db]))
    assert value(found, "ds_kv_queue_depth", db="app", group="g") == 1
    assert value(found, "ds_kv_queue_in_flight", db="app", group="g") == 1
    assert value(found, "ds_kv_queue_dead_letters", db="app", group="g") == 1
    assert value(found, "ds_kv_queue_depth", db="app", group="h") == 3  # groups are independent
    assert value(found, "ds_kv_queue_dead_letters", db="app", group="h") == 0


def test_databases_past_the_bound_are_folded_into_other() -> None:
    dbs = [database(f"db{i}", keys=i + 1, groups=("g",), ready=i + 1) for i in range(5)]
    found = samples(KvCollector(lambda: dbs, max_databases=2))
    assert value(found, "ds_kv_databases") == 5
    assert value(found, "ds_kv_keys", db="db0") == 1
    assert value(found, "ds_kv_keys", db="db1") == 2
    assert value(found, "ds_kv_keys", db=OTHER) == 3 + 4 + 5
    assert value(found, "ds_kv_commits_total", db=OTHER) == 2 * (3 + 4 + 5)
    assert value(found, "ds_kv_queue_depth", db=OTHER, group=OTHER) == 3 + 4 + 5
    assert {labels for name, labels in found if name == "ds_kv_keys"} == {
        (("db", "db0"),),
        (("db", "db1"),),
        (("db", OTHER),),
    }


def test_groups_past_the_bound_are_folded_into_other_the_oldest_age_is_the_maximum() -> None:
    db = database("app", groups=("a", "b", "c", "d"), ready=2)
    db.queue.apply(create_group(db.queue, "late", None), "p")  # fed new messages only: nothing pending
    found = samples(KvCollector(lambda: [db], max_groups=2))
    names = {dict(labels)["group"] for name, labels in found if name == "ds_kv_queue_depth"}
    assert names == {"a", "b", OTHER}
    assert value(found, "ds_kv_queue_depth", db="app", group=OTHER) == 2 + 2 + 0
    assert value(found, "ds_kv_queue_oldest_age_seconds", db="app", group=OTHER) == NOW_MS / 1000


def test_no_database_still_names_every_family() -> None:
    found = samples(KvCollector(lambda: ()))
    assert value(found, "ds_kv_databases") == 0
    registry = CollectorRegistry()
    KvMetrics(registry)
    names = {family.name for family in registry.collect()}
    assert {"ds_kv_queue_depth", "ds_kv_queue_redeliveries", "ds_kv_watch_delivery_seconds"} <= names


def test_a_durable_batch_is_one_batch_size_and_one_latency_per_decision() -> None:
    registry = CollectorRegistry()
    metrics = KvMetrics(registry)
    metrics.on_durable([0.001, 0.003, 0.2])
    assert registry.get_sample_value("ds_kv_commit_batch_events_count") == 1
    assert registry.get_sample_value("ds_kv_commit_batch_events_sum") == 3
    assert registry.get_sample_value("ds_kv_commit_seconds_count") == 3
    assert registry.get_sample_value("ds_kv_commit_seconds_bucket", {"le": "0.005"}) == 2


def test_the_due_wait_counts_from_when_the_first_message_became_due_not_delayed_ones() -> None:
    db = database("app", groups=("g",))
    db.queue.apply(enqueue(db.queue, QueuedMessage("m1", b"v", 1_000, delay_ms=60_000)), "p1")
    found = samples(KvCollector(lambda: [db]))
    assert value(found, "ds_kv_queue_depth", db="app", group="g") == 1
    assert value(found, "ds_kv_queue_oldest_due_seconds", db="app", group="g") == 0  # due at 61 s
    assert value(found, "ds_kv_queue_oldest_age_seconds", db="app", group="g") == 9
    db.queue.apply(enqueue(db.queue, QueuedMessage("m2", b"v", 2_500)), "p2")
    found = samples(KvCollector(lambda: [db]))
    assert value(found, "ds_kv_queue_oldest_due_seconds", db="app", group="g") == 7.5
