"""The origin's KV databases: found by name, rebuilt at start-up (from their snapshot and the change
events after it, or from the whole change stream), and swept in the background: expired keys
deleted, lapsed queue leases failed, snapshots taken when due, queue messages no group needs
trimmed now and then.

A database exists once written: a read of a name never written finds nothing and allocates
nothing, so probing random names costs the server no memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Final

from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.database import Decision, DurableHook, KvDatabase
from plugin_streams.origin.kv.events import Draft
from plugin_streams.origin.kv.log import KV_ROOT, ChangeLog, is_kv_path
from plugin_streams.origin.kv.queues import trim
from plugin_streams.origin.kv.snapshotter import Snapshotter
from plugin_streams.origin.reads import wait_for_data
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage.base import StorageError
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.errors import BadRequest, Unavailable

logger = logging.getLogger(__name__)
_NAME: Final = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
#: How often the sweeper looks for expired keys and lapsed leases.
SWEEP_INTERVAL_S: Final = 0.25
#: How often the sweeper trims a queue: a trim is an event in the log, so not at every sweep.
TRIM_INTERVAL_S: Final = 10.0
#: Seconds a database waits for its change stream to move before looking again anyway (postgres).
FOLLOW_WAIT_S: Final = 30.0


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(
            "a database name is 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


class KvDatabases:
    def __init__(
        self,
        service: StreamService,
        on_durable: DurableHook | None = None,
        snapshots: Snapshotter | None = None,
        *,
        trim_interval_s: float = TRIM_INTERVAL_S,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.on_durable = on_durable  # told of every durable write batch (origin/kv/metrics.py)
        self.snapshots = snapshots  # None: no snapshots (the memory engine has no data directory)
        self.trim_interval_s = trim_interval_s
        self.monotonic_s = monotonic_s
        service.reserve(KV_ROOT)
        self._open: dict[str, KvDatabase] = {}
        self._loading: SingleFlight[str, KvDatabase] = SingleFlight("kv-load")
        self._trimmed_at: dict[str, float] = {}
        self._followers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Rebuild every database whose change stream the origin recovered."""
        for path in [path for path in self.service.registry.by_path if is_kv_path(path)]:
            await self.open(path[len(KV_ROOT) :])

    def all(self) -> list[KvDatabase]:
        return list(self._open.values())

    async def find(self, name: str) -> KvDatabase | None:
        """The database, or None if it was never written (nothing is allocated for it)."""
        check_name(name)
        if name not in self._open:
            log = ChangeLog(self.service, name)
            await log.refresh()  # another origin may have written it (postgres engine)
            if log.tail() is None:
                return None
        return await self.open(name)

    async def open(self, name: str) -> KvDatabase:
        """The database, loaded from its change stream on first use; one load however many ask."""
        check_name(name)
        db = self._open.get(name)
        if db is not None:
            return db
        return await self._loading.run(name, lambda: self._load(name))

    async def _load(self, name: str) -> KvDatabase:
        db = KvDatabase(name, ChangeLog(self.service, name), self.service.clock_ms, self.on_durable)
        started = time.monotonic()
        await db.log.refresh()  # with several origins: the change stream as the database holds it
        snapshot = None if self.snapshots is None else await self.snapshots.restore(db)
        await db.load(snapshot)
        if self.snapshots is not None:
            self.snapshots.loaded(db)
        self._open[name] = db
        if self.service.shared is not None:
            self._followers.append(spawn(follow_other_origins(db), name=f"kv-follow:{name}"))
        logger.info(
            "KV database %s loaded in %.3f s: %s, then %d events replayed",
            name,
            time.monotonic() - started,
            "no snapshot" if snapshot is None else f"snapshot at {snapshot.offset}",
            db.events_applied,
        )
        return db

    async def close(self) -> None:
        """At a clean shutdown (after the sweeper stopped): snapshot what changed since the last one."""
        await cancel_all(self._followers)
        if self.snapshots is not None:
            await self.snapshots.close(self.all())

    async def sweep_forever(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            shared = self.service.shared
            if shared is not None:
                # Several origins: one sweeps (the one elected for the stream sweeps), having opened
                # every database, so that no two origins log the same expiry.
                if not shared.wakeups.leader:
                    continue
                await self._open_every_database()
            for db in self.all():
                try:
                    await self.sweep(db)
                except (StorageError, Unavailable) as exc:
                    logger.warning("KV database %s: sweep skipped: %s", db.name, exc)  # storage away: one line
                except Exception:
                    logger.exception("KV database %s: the sweep failed", db.name)

    async def sweep(self, db: KvDatabase) -> None:
        now = self.service.clock_ms()
        if db.index.expired_keys(now, 1):
            await db.write(decisions.sweep_expired(db))
        if decisions.has_expired_leases(db, now):
            await db.write(decisions.expire_leases(db))
        if self._trim_due(db):
            await db.write(trim_queue(db))
        if self.snapshots is not None:
            self.snapshots.poll(db)

    async def _open_every_database(self) -> None:
        shared = self.service.shared
        assert shared is not None
        last = KV_ROOT
        try:
            while paths := [p for p in await shared.store.paths_from(last, 1000, after=True) if is_kv_path(p)]:
                for path in paths:
                    if path[len(KV_ROOT) :] not in self._open:
                        await self.open(path[len(KV_ROOT) :])
                last = paths[-1]
        except (StorageError, Unavailable) as exc:
            logger.warning("could not list the KV databases: %s", exc)  # the next sweep tries again

    def _trim_due(self, db: KvDatabase) -> bool:
        now = self.monotonic_s()
        if now - self._trimmed_at.setdefault(db.name, now) < self.trim_interval_s:
            return False
        self._trimmed_at[db.name] = now
        return bool(db.queue.groups) and db.queue.trimmable_through() is not None


async def follow_other_origins(db: KvDatabase) -> None:
    """Catch the database up whenever its change stream moves (postgres engine: another origin
    wrote it, and this origin's wakeups caught the stream up): queue waiters here learn of
    messages enqueued there."""
    while True:
        try:
            state = db.log.state()
            if state is None:
                await asyncio.sleep(1.0)
            elif not db.log.has_after(db.offset):
                await wait_for_data(state, state.tail, FOLLOW_WAIT_S)
            await db.catch_up()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("KV database %s: catching up on other origins failed", db.name)
            await asyncio.sleep(1.0)


def trim_queue(db: KvDatabase) -> Decision[str | None]:
    """Drop the queue's messages that no group needs any more (answers the last id dropped).

    Nothing is trimmed while the queue has no group: Deno's queue keeps what was enqueued before
    its first listener, and the first group (created with `from: -1`, or implicitly by a lease)
    must receive it. A group created later receives every message still retained."""

    def decide(now: int) -> tuple[Draft, str | None]:
        record = trim(db.queue) if db.queue.groups else None
        return (Draft(), None) if record is None else (Draft(queue=[record]), record.through_id)

    return decide
