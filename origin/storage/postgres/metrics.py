"""The postgres engine's Prometheus metrics (ds_pg_*), in the origin's registry.

What each one answers, and the alert that reads it (deploy/prometheus/rules.yml):

- `ds_pg_pool_size`, `ds_pg_pool_in_use`: connections open in this origin's pool, and those lent
  out right now; read from the pool at scrape time, never stored. In use equal to the size for
  minutes means requests queue for a connection (DSPgPoolSaturated).
- `ds_pg_commit_seconds`: one observation per append transaction, from sending it to its commit
  (with a synchronous standby: to the standby's confirmation). The engine's equivalent of the file
  engine's write + fdatasync (DSPgCommitLatencyHigh).
- `ds_pg_append_conflicts_total`: conditional appends decided again because another origin
  appended to the stream first. Expected while several origins write one stream; a steady high
  rate means writers of one stream are spread over origins (DSPgAppendConflictsHigh, informational).
- `ds_pg_notify_lag_seconds`: from a NOTIFY being sent (by any origin) to this origin's listener
  receiving it, i.e. how late live readers here learn of appends made elsewhere. The sender's
  timestamp is its wall clock, so clock skew between hosts shows up here too.
- `ds_pg_listener_connected`: 1 while the LISTEN connection is up. While it is 0, live readers on
  this origin are woken only by appends made through this origin (DSPgListenerDisconnected).
- `ds_pg_errors_total{kind}`: `connect` (a pool or listener connection could not be opened),
  `query` (a statement failed for a reason other than a conflict: the client got a 503),
  `listener` (the LISTEN connection broke). Every kind is exported from the start, at 0, so a rate
  is defined before the first error (DSPgErrors).

No label carries a stream path, a host or a statement: every series here is one per origin.
"""

from __future__ import annotations

from typing import Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ErrorKind = Literal["connect", "query", "listener"]
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = ("connect", "query", "listener")

#: A single-row commit on a local disk takes ~0.3 ms at best; with a synchronous standby it is
#: milliseconds to tens of milliseconds (postgres-engine notes §4.4: p99 ~38 ms at c=64); past
#: 5 s producers time out and retry anyway.
COMMIT_BUCKETS: Final = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: A NOTIFY arrives within a millisecond or so on an idle database; seconds mean a listener that
#: is starved or reconnecting (coalescing adds its own short delay to every lag).
NOTIFY_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Pool(Protocol):
    """What is read of an asyncpg.Pool: its open connections, and those not lent out."""

    def get_size(self) -> int: ...

    def get_idle_size(self) -> int: ...


class PostgresMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._pool_size = Gauge("ds_pg_pool_size", "Connections open in the database pool", registry=registry)
        self._pool_in_use = Gauge(
            "ds_pg_pool_in_use", "Connections of the database pool lent out right now", registry=registry
        )
        self._commit_seconds = Histogram(
            "ds_pg_commit_seconds",
            "Time from sending an append transaction to its commit (and the synchronous standby's confirmation)",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self._conflicts = Counter(
            "ds_pg_append_conflicts",
            "Conditional appends decided again because another origin appended to the stream first",
            registry=registry,
        )
        self._notify_lag = Histogram(
            "ds_pg_notify_lag_seconds",
            "Time from a NOTIFY being sent (by any origin) to this origin's listener receiving it",
            buckets=NOTIFY_LAG_BUCKETS,
            registry=registry,
        )
        self._listener_connected = Gauge(
            "ds_pg_listener_connected", "1 while this origin's LISTEN connection is up", registry=registry
        )
        errors = Counter("ds_pg_errors", "Database errors, by kind", ["kind"], registry=registry)
        # Children created now: each kind is exported at 0 from the start, and labels() costs a lock.
        self._errors = {kind: errors.labels(kind) for kind in ERROR_KINDS}

    def watch_pool(self, pool: Pool) -> None:
        """Export `pool`'s figures at every scrape (again with the new pool if it is replaced)."""
        self._pool_size.set_function(pool.get_size)
        self._pool_in_use.set_function(lambda: pool.get_size() - pool.get_idle_size())

    def committed(self, seconds: float) -> None:
        """An append transaction committed after `seconds`."""
        self._commit_seconds.observe(seconds)

    def conflict(self) -> None:
        """A conditional append lost to another origin's and is decided again."""
        self._conflicts.inc()

    def notified(self, lag_seconds: float) -> None:
        """The listener received a NOTIFY sent `lag_seconds` ago by the sender's clock.

        A sender whose clock runs ahead gives a negative lag: counted as 0, so the histogram's sum
        stays a sum of waits.
        """
        self._notify_lag.observe(max(0.0, lag_seconds))

    def listener(self, up: bool) -> None:
        """The LISTEN connection is now up (True) or down (False)."""
        self._listener_connected.set(1 if up else 0)

    def error(self, kind: ErrorKind) -> None:
        self._errors[kind].inc()
