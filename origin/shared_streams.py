"""SharedParts: what an origin adds when other origins serve the same streams (postgres engine).

The registry that asks the database (origin.shared_registry), the committer that decides appends
at commit time (origin.shared_commit) and the wakeups that tell other origins what changed
(origin.wakeups), built and started together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plugin_streams.origin.replication.shared_changes import SharedChangeLog
from plugin_streams.origin.shared_commit import SharedCommitter
from plugin_streams.origin.shared_registry import SharedRegistry
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.wakeups import Wakeups
from plugin_streams.shared.clock import WallClock


@dataclass(slots=True)
class SharedParts:
    store: PostgresStore
    registry: SharedRegistry
    committer: SharedCommitter
    wakeups: Wakeups
    changes: SharedChangeLog | None = None  # the replication change feed, once routes exist

    def follow_changes(self, changes: SharedChangeLog) -> None:
        self.changes = changes
        changes.on_written = self.wakeups.feed_changed
        self.wakeups.on_feed = changes.refresh

    @classmethod
    def build(
        cls, store: PostgresStore, clock_ms: WallClock, on_batch: Callable[[int, int, float], None] | None
    ) -> SharedParts:
        registry = SharedRegistry(store, clock_ms)
        wakeups = Wakeups(store.url, registry, store)
        committer = SharedCommitter(store, registry, on_batch=on_batch, on_commit=wakeups.changed)
        registry.on_gone = lambda state: wakeups.changed(state, gone=True)
        return cls(store, registry, committer, wakeups)

    async def start(self) -> None:
        await self.store.prepare()
        if self.changes is not None:
            await self.changes.start()
        self.wakeups.start()

    async def stop(self) -> None:
        await self.wakeups.stop()
