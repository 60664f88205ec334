"""The KV store's and queues' Prometheus metrics (README, "KV and queue metrics").

Two kinds:

- Figures of state, read at scrape time by a collector over the open databases: per database the
  keys stored, the commits applied and the change stream's length; per database and consumer
  group the queue's depth, in-flight leases, redeliveries, acks, dead letters, the age of the
  oldest message still owed an outcome, and how long the message due first has waited for a
  consumer since it became due (the stall signal: delayed messages do not count). Every figure
  comes from an index the state keeps (origin/kv/queues/stats.py, the ready heap's top), so a
  scrape costs O(databases + groups), never a walk of a queue.
  The scrape runs on the event loop, like every request, so it reads the state between writes;
  it may show a batch that is applied but not yet durable, which only a crash could take back.
- Histograms observed as things happen: the time from a KV write to its durable answer and the
  events per write batch (KvDatabase's `on_durable` hook), and the watch delivery lag (the time
  from a commit to the live read that hands it to a watcher, origin/kv/watch_lag.py).

Database and group names are chosen by clients, so their labels are bounded: the first
MAX_DATABASES databases opened by the process and, in each, the first MAX_GROUPS groups created
are exported by name; every later one is folded into the label value `_other` (sums; the oldest
age is the maximum). `_other` can never be a database name (names start with a letter or a
digit); a group literally named `_other` simply joins the fold. Databases and groups are never
dropped while the process runs, so a name once exported keeps its series and the fold only
grows: the counters stay monotonic. `ds_kv_databases` counts them all, folded or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plugin_streams.origin.kv.queues.stats import GroupStats, group_stats
from plugin_streams.origin.kv.watch_lag import delivery_seconds
from plugin_streams.shared.aio.request_metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from plugin_streams.origin.kv.database import KvDatabase

#: Databases exported by name; the rest are folded into OTHER.
MAX_DATABASES: Final = 32
#: Consumer groups exported by name in each such database; the rest are folded into OTHER.
MAX_GROUPS: Final = 16
OTHER: Final = "_other"
LiveMode = Literal["long_poll", "sse"]
_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


class KvMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.commit_seconds = Histogram(
            "ds_kv_commit_seconds",
            "Time from a KV write (a commit or a queue operation that logs an event) to its durable answer",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_batch = Histogram(
            "ds_kv_commit_batch_events",
            "Events per KV write batch (appended to the change stream as one record)",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        delivery = Histogram(
            "ds_kv_watch_delivery_seconds",
            "Time from a commit to the live read of its change stream that hands it to a waiting watcher",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # labels() costs a lock and a lookup: keep the two children.
        self._delivery = {mode: delivery.labels(mode) for mode in ("long_poll", "sse")}
        self.collector = KvCollector(lambda: ())
        registry.register(self.collector)

    def watch(self, databases: Callable[[], Iterable[KvDatabase]]) -> None:
        """Export the state of `databases()` (KvDatabases.all) at every scrape."""
        self.collector.databases = databases

    def on_durable(self, waits: Sequence[float]) -> None:
        """A write batch became durable: `waits` are its decisions' seconds since their write()."""
        self.commit_batch.observe(len(waits))
        for seconds in waits:
            self.commit_seconds.observe(seconds)

    def delivered(self, mode: LiveMode, body: bytes, end_offset: str, now_ms: int) -> None:
        """A live read hands `body` (ending at `end_offset`) of a change stream to a waiting watcher."""
        seconds = delivery_seconds(body, end_offset, now_ms)
        if seconds is not None:
            self._delivery[mode].observe(seconds)


@dataclass(slots=True)
class _DatabaseFigures:
    keys: int = 0
    commits: int = 0
    log_bytes: int = 0


@dataclass(slots=True)
class _GroupFigures:
    depth: int = 0
    in_flight: int = 0
    redeliveries: int = 0
    acked: int = 0
    dead_letters: int = 0
    oldest_age_ms: int = 0
    oldest_due_ms: int = 0

    def add(self, stats: GroupStats, due_wait_ms: int) -> None:
        self.depth += stats.depth
        self.in_flight += stats.in_flight
        self.redeliveries += stats.redeliveries
        self.acked += stats.acked
        self.dead_letters += stats.dead_letters
        self.oldest_age_ms = max(self.oldest_age_ms, stats.oldest_age_ms)
        self.oldest_due_ms = max(self.oldest_due_ms, due_wait_ms)


class KvCollector(Collector):
    """Per-database and per-group figures of the open databases, under bounded labels."""

    def __init__(
        self,
        databases: Callable[[], Iterable[KvDatabase]],
        *,
        max_databases: int = MAX_DATABASES,
        max_groups: int = MAX_GROUPS,
    ) -> None:
        self.databases = databases
        self.max_databases = max_databases
        self.max_groups = max_groups

    def collect(self) -> Iterator[Metric]:
        dbs: dict[str, _DatabaseFigures] = {}
        groups: dict[tuple[str, str], _GroupFigures] = {}
        count = 0
        for count, db in enumerate(self.databases(), start=1):
            db_label = db.name if count <= self.max_databases else OTHER
            figures = dbs.setdefault(db_label, _DatabaseFigures())
            figures.keys += len(db.index)
            figures.commits += db.events_applied
            figures.log_bytes += 0 if db.offset is None else db.offset.position
            now_ms = db.clock_ms()
            for rank, name in enumerate(db.queue.groups, start=1):
                group_label = name if db_label != OTHER and rank <= self.max_groups else OTHER
                group_figures = groups.setdefault((db_label, group_label), _GroupFigures())
                group_figures.add(group_stats(db.queue, name, now_ms), _due_wait_ms(db, name, now_ms))
        yield GaugeMetricFamily("ds_kv_databases", "KV databases open in this process", value=count)
        yield from _database_families(dbs)
        yield from _group_families(groups)


def _due_wait_ms(db: KvDatabase, group: str, now_ms: int) -> int:
    """How long the group's message due first has been due without being leased (0: none is due)."""
    first = db.queue.group(group).next_ready()
    return 0 if first is None else max(0, now_ms - first[0])


def _database_families(dbs: dict[str, _DatabaseFigures]) -> Iterator[Metric]:
    keys = GaugeMetricFamily("ds_kv_keys", "Keys stored (expired ones until the sweeper deletes them)", labels=["db"])
    commits = CounterMetricFamily(
        "ds_kv_commits", "Change events applied by this process (those replayed at start-up included)", labels=["db"]
    )
    log = GaugeMetricFamily("ds_kv_log_bytes", "Position of the change stream's tail, in bytes", labels=["db"])
    for db, figures in dbs.items():
        keys.add_metric([db], figures.keys)
        commits.add_metric([db], figures.commits)
        log.add_metric([db], figures.log_bytes)
    return iter((keys, commits, log))


def _group_families(groups: dict[tuple[str, str], _GroupFigures]) -> Iterator[Metric]:
    labels = ["db", "group"]
    depth = GaugeMetricFamily("ds_kv_queue_depth", "Messages ready for the group (due or not yet due)", labels=labels)
    in_flight = GaugeMetricFamily("ds_kv_queue_in_flight", "Messages leased and not yet answered", labels=labels)
    redeliveries = CounterMetricFamily(
        "ds_kv_queue_redeliveries", "Hand-outs beyond each message's first attempt", labels=labels
    )
    acked = CounterMetricFamily("ds_kv_queue_acked", "Messages acknowledged", labels=labels)
    dead = GaugeMetricFamily("ds_kv_queue_dead_letters", "Entries in the group's dead-letter queue", labels=labels)
    oldest = GaugeMetricFamily(
        "ds_kv_queue_oldest_age_seconds",
        "Age of the oldest message still owed an outcome (ready or leased); 0 when none is",
        labels=labels,
    )
    oldest_due = GaugeMetricFamily(
        "ds_kv_queue_oldest_due_seconds",
        "How long the message due first has waited for a lease since it became due; 0 when none is due",
        labels=labels,
    )
    for (db, group), figures in groups.items():
        depth.add_metric([db, group], figures.depth)
        in_flight.add_metric([db, group], figures.in_flight)
        redeliveries.add_metric([db, group], figures.redeliveries)
        acked.add_metric([db, group], figures.acked)
        dead.add_metric([db, group], figures.dead_letters)
        oldest.add_metric([db, group], figures.oldest_age_ms / 1000)
        oldest_due.add_metric([db, group], figures.oldest_due_ms / 1000)
    return iter((depth, in_flight, redeliveries, acked, dead, oldest, oldest_due))
