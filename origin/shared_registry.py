"""SharedRegistry: the streams of an origin that shares them with other origins (postgres engine).

The database is the truth; this registry is a cache of the incarnations this origin has looked
at. Every lookup by path reads the stream's row (one indexed query), so a stream created,
appended to, closed or deleted through another origin is seen as it is now: a record count
ahead of the cache brings the missing records' sizes and producers in (catch_up), a different
generation replaces the cached incarnation, a missing row forgets it. Live readers are woken by
the same catch-up, run when another origin's NOTIFY names the stream (origin.wakeups).

Decisions that free a path (expiry, deletion) are taken in the database, conditionally: an
expiry only if the row is still due (another origin may have renewed a sliding TTL), a removal
only if no fork reads the data (the foreign key on fork_source refuses it otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from plugin_streams.origin.registry import Registry, is_expired
from plugin_streams.origin.storage.base import StorageError
from plugin_streams.origin.storage.postgres.rows import StreamRow
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.clock import WallClock
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.headers import RETRY_AFTER

logger = logging.getLogger(__name__)

#: Incarnations kept in memory; beyond it, idle ones (no reader waiting, no write queued) go.
DEFAULT_CAPACITY: Final = 10_000


def database_unavailable() -> Unavailable:
    """The 503 of a request the database could not answer: come back in a second (a failover takes
    Patroni's ttl; a producer retrying the same (epoch, seq) meanwhile loses nothing)."""
    return Unavailable("the database is unavailable", {RETRY_AFTER: "1"})


class SharedRegistry(Registry):
    def __init__(self, store: PostgresStore, clock_ms: WallClock, *, capacity: int = DEFAULT_CAPACITY) -> None:
        super().__init__(store)
        self.shared = store
        self.clock_ms = clock_ms
        self.on_gone: Callable[[StreamState], None] = lambda state: None  # tell the other origins
        self.capacity = capacity
        self._loading: SingleFlight[int, StreamState | None] = SingleFlight("stream-load")

    # -- lookups ----------------------------------------------------------------------------

    async def find(self, path: str, now_ms: int) -> StreamState | None:
        try:
            row = await self.shared.lookup(path)
        except StorageError as exc:
            raise database_unavailable() from exc
        cached = self.by_path.get(path)
        if row is None:
            if cached is not None:
                self._forget(cached)
            return None
        if cached is not None and cached.generation != row.generation:
            self._forget(cached)
            cached = None
        state = cached if cached is not None else await self._attach(row.generation)
        if state is None:
            return None
        await self.catch_up(state, row)
        if is_expired(state, now_ms) and await self._expire_if_due(state, now_ms):
            return None
        return state

    async def by_number(self, generation: int) -> StreamState | None:
        state = await self._attach(generation)
        if state is not None:
            await self.catch_up(state)
        return state

    async def _attach(self, generation: int) -> StreamState | None:
        """The cached state of `generation`, loading it (and its fork sources) once."""
        state = self.by_generation.get(generation)
        if state is not None:
            self._place(state)
            return state
        return await self._loading.run(generation, lambda: self._load(generation))

    async def _load(self, generation: int) -> StreamState | None:
        try:
            loaded = await self.shared.load(generation)
        except StorageError as exc:
            raise database_unavailable() from exc
        if loaded is None:
            return None
        fork = loaded.config.fork
        source = await self._attach(fork.source_generation) if fork is not None else None
        if fork is not None and source is None:
            return None  # its source went while we looked: the fork is going too
        state = StreamState.from_loaded(loaded, source)
        if source is not None:
            source.refcount += 1
        self.by_generation[generation] = state
        self._place(state)
        self._evict()
        return state

    def _place(self, state: StreamState) -> None:
        if not state.removed and state.config.path not in self.by_path:
            self.by_path[state.config.path] = state

    def _evict(self) -> None:
        """Forget idle incarnations beyond the capacity, oldest loaded first."""
        excess = len(self.by_generation) - self.capacity
        for state in list(self.by_generation.values()):
            if excess <= 0:
                return
            if state.changed is None and not state.pending and not state.flushing and state.refcount == 0:
                self._uncache(state)  # not removed: a request still holding it stays correct
                excess -= 1

    def _forget(self, state: StreamState) -> None:
        """The incarnation is gone: readers waiting on it are told (removed, woken)."""
        self._detach(state)
        self._uncache(state)

    def _uncache(self, state: StreamState) -> None:
        """Drop the incarnation from memory only (the next lookup loads it again)."""
        if self.by_path.get(state.config.path) is state:
            del self.by_path[state.config.path]
        if self.by_generation.get(state.generation) is state:
            del self.by_generation[state.generation]
            if state.source is not None:
                state.source.refcount -= 1

    # -- catching up on other origins -------------------------------------------------------

    async def catch_up(self, state: StreamState, row: StreamRow | None = None) -> None:
        """Bring `state` to the database's: records other origins appended, closure, deletion."""
        if row is not None and row.next_record <= state.record_count and not _config_changed(state, row):
            if row.last_access_ms > state.last_access_ms:
                state.last_access_ms = row.last_access_ms
            return
        async with state.sync_lock:
            await self.catch_up_locked(state)

    async def catch_up_locked(self, state: StreamState) -> None:
        """catch_up, for a caller holding state.sync_lock (the committer)."""
        try:
            row, metas = await self.shared.records_since(state.generation, state.record_count)
        except StorageError as exc:
            raise database_unavailable() from exc
        if row is None:
            self._forget(state)
            return
        before = (state.tail, state.closed, state.soft_deleted)
        if row.first_record > state.record_count:
            # Retention dropped records this origin never saw: start again where the kept ones begin.
            state.forget_records(len(state.starts))
            state.dropped = row.first_record
            state.tail = row.first_position if row.first_position is not None else state.tail
            state.retained_from = max(state.retained_from, state.tail)
        elif row.first_record > state.dropped:
            state.forget_records(row.first_record - state.dropped)
            state.retained_from = max(state.retained_from, state.starts[0] if state.starts else state.tail)
        for meta in metas:
            state.commit_meta(meta.size, meta.written_ms, meta.producer)
        if metas and state.config.retention is not None:  # the same earliest offset on every origin
            state.retained_from = max(state.retained_from, state.retention_point(self.clock_ms()))
        state.closed, state.closed_by, state.stream_seq = row.closed, row.closed_by, row.stream_seq
        state.last_access_ms = max(state.last_access_ms, row.last_access_ms)
        if (row.state == "soft_deleted") != state.soft_deleted:  # the database's word, both ways
            state.config = row.config()
        if row.state == "detached":
            self._detach(state)
        state.rollback()  # the validation view starts again from what the database holds
        if (state.tail, state.closed, state.soft_deleted) != before:
            state.notify()

    # -- leaving ----------------------------------------------------------------------------

    async def _expire_if_due(self, state: StreamState, now_ms: int) -> bool:
        """Expire `state` if the database agrees its time is up; True if it is gone."""
        try:
            if not await self.shared.expire_if_due(state.generation, now_ms):
                return False
        except StorageError as exc:
            raise database_unavailable() from exc
        self._forget(state)
        self.events.gone(state, "expired")
        self.on_gone(state)
        await self._release_source(state)
        return True

    def expire(self, state: StreamState) -> None:
        """The sweeper's expiry: decided by the database (see _expire_if_due)."""

        async def expire() -> None:
            try:
                await self._expire_if_due(state, self.clock_ms())
            except Unavailable:
                logger.warning("could not expire %r: the database is unavailable", state.config.path)

        spawn(expire(), name=f"expire-{state.generation}")

    async def delete(self, state: StreamState) -> None:
        """DELETE: removed if no fork reads the data, else soft-deleted (it keeps the path)."""
        await state.durable()
        try:
            removed = await self.shared.remove_unreferenced(state.generation)
            if not removed:  # the database first: a failed write leaves this origin's state live
                await self.store.replace_config(replace(state.config, soft_deleted=True))
                state.mark_soft_deleted()
        except StorageError as exc:
            raise database_unavailable() from exc
        if removed:
            self._forget(state)
        else:
            state.notify()
        self.events.gone(state, "deleted")
        self.on_gone(state)
        if removed:
            await self._release_source(state)

    async def _release_source(self, state: StreamState) -> None:
        """A removed fork's deleted or expired sources go, in turn, once no other fork reads them
        (decided by the database: this origin may not know that another one deleted them)."""
        source_generation = state.config.fork.source_generation if state.config.fork is not None else None
        while source_generation is not None:
            try:
                removed, next_source = await self.shared.release_source(source_generation)
            except StorageError:
                logger.exception("could not remove stream generation %d", source_generation)
                return
            if not removed:
                return
            source = self.by_generation.get(source_generation)
            if source is not None:
                self._forget(source)
                self.on_gone(source)
            source_generation = next_source


def _config_changed(state: StreamState, row: StreamRow) -> bool:
    soft_deleted = row.state == "soft_deleted"  # (a detached row is a change whatever its configuration)
    return soft_deleted != state.soft_deleted or row.state == "detached" or row.closed != state.closed
