"""When and how databases are snapshotted, and how start-up restores them.

A database is snapshotted once it has applied `every_events` events since its last snapshot, or
`every_s` seconds after it if anything changed, and at a clean shutdown; the sweeper asks
(`poll`) four times a second. At most one snapshot per database is under way, in a background
task, so the sweeper never waits for one. Events replayed at start-up count as new: a database
rebuilt from a long log is snapshotted soon after.

Restoring never trusts a snapshot blindly: a file that is torn, altered, foreign, of another
incarnation of the change stream, or ahead of it, is logged and ignored, and the database is
rebuilt from the whole log (which is always enough: the snapshot only saves time).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.kv import snapshots
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.snapshot_files import SnapshotFiles
from plugin_streams.origin.kv.snapshots import DatabaseSnapshot, RefusedSnapshot
from plugin_streams.shared.aio.tasks import spawn

logger = logging.getLogger(__name__)
#: The snapshot directory, under the origin's data directory.
SNAPSHOT_DIR: Final = "kv"


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    every_events: int = 10_000
    every_s: float = 60.0


@dataclass(slots=True)
class _Last:
    """The database's event count and the time when its last snapshot was captured."""

    events_applied: int
    at_s: float


class Snapshotter:
    def __init__(
        self, files: SnapshotFiles, policy: SnapshotPolicy, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self.files = files
        self.policy = policy
        self.monotonic_s = monotonic_s
        self._last: dict[str, _Last] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    async def restore(self, db: KvDatabase) -> DatabaseSnapshot | None:
        """The database's snapshot if it is intact and fits its change stream, else None (logged)."""
        data = await asyncio.to_thread(self.files.read, db.name)
        if data is None:
            return None
        try:
            snapshot = await asyncio.to_thread(snapshots.decode, db.name, data)
        except RefusedSnapshot as exc:
            logger.warning("KV database %s: snapshot ignored (%s); replaying the whole log", db.name, exc)
            return None
        why = db.log.why_not_after(snapshot.offset)
        if why is not None:
            logger.warning("KV database %s: snapshot at %s ignored: %s", db.name, snapshot.offset, why)
            return None
        return snapshot

    def loaded(self, db: KvDatabase) -> None:
        """Start counting for a database just loaded: what it replayed is not in its snapshot."""
        self._last[db.name] = _Last(0, self.monotonic_s())

    def due(self, db: KvDatabase) -> bool:
        last = self._last.setdefault(db.name, _Last(0, self.monotonic_s()))
        fresh = db.events_applied - last.events_applied
        if fresh >= self.policy.every_events:
            return True
        return fresh > 0 and self.monotonic_s() - last.at_s >= self.policy.every_s

    def poll(self, db: KvDatabase) -> None:
        """Start a snapshot of `db` in the background if one is due and none is under way."""
        if db.name not in self._running and self.due(db):
            task = spawn(self._take_logged(db), name=f"kv-snapshot:{db.name}")
            self._running[db.name] = task
            task.add_done_callback(lambda _: self._running.pop(db.name, None))

    async def close(self, databases: Iterable[KvDatabase]) -> None:
        """At a clean shutdown: finish the snapshots under way, then snapshot every changed database."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        for db in databases:
            if db.events_applied != self._last.get(db.name, _Last(0, 0.0)).events_applied:
                await self._take_logged(db)

    async def take(self, db: KvDatabase) -> bool:
        """Snapshot `db` now; False when it has no event yet."""
        started = self.monotonic_s()
        taken = await db.while_still(lambda: snapshots.capture(db))
        if taken is None:
            return False
        held_s = self.monotonic_s() - started
        data = await asyncio.to_thread(snapshots.encode, taken)
        await asyncio.to_thread(self.files.write, db.name, data)
        self._last[db.name] = _Last(taken.events_applied, started)
        logger.info(
            "KV database %s: snapshot at %s written (%d keys, %d bytes; writes held %.3f s, total %.3f s)",
            db.name,
            taken.offset,
            len(taken.entries),
            len(data),
            held_s,
            self.monotonic_s() - started,
        )
        return True

    async def _take_logged(self, db: KvDatabase) -> None:
        try:
            await self.take(db)
        except Exception:  # a full disk must not stop the database: the log still has everything
            logger.exception("KV database %s: the snapshot failed", db.name)


def snapshotter_for(config: OriginConfig) -> Snapshotter | None:
    """Snapshots under `<data-dir>/kv/` for the file engine; none for the memory engine (no data dir)."""
    if config.engine != "file":
        return None
    policy = SnapshotPolicy(config.kv_snapshot_events, config.kv_snapshot_seconds)
    return Snapshotter(SnapshotFiles(os.path.join(config.data_dir, SNAPSHOT_DIR)), policy)
