"""Which stream incarnations exist, which one a path names, and how they leave.

A path names at most one incarnation (live, or soft-deleted and answering 410). Incarnations
that lost their path but still feed forks stay reachable by generation until their last fork
goes. Expiry is decided here on every lookup, to the millisecond; the sweeper only reclaims
space earlier.
"""

from __future__ import annotations

import logging

from plugin_streams.origin.events import NoEvents, StreamEvents
from plugin_streams.origin.paths_index import SortedPaths
from plugin_streams.origin.storage.base import LoadedStream, StorageError, Store
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import Gone, NotFound

logger = logging.getLogger(__name__)


def is_expired(state: StreamState, now_ms: int, *, sliding: bool = True) -> bool:
    config = state.config
    if config.expires is not None and now_ms >= config.expires.at_ms:
        return True
    return sliding and config.ttl_seconds is not None and now_ms >= state.last_access_ms + config.ttl_seconds * 1000


def require_live(state: StreamState | None) -> StreamState:
    if state is None or state.removed:
        raise NotFound("stream not found")
    if state.soft_deleted:
        raise Gone("stream was deleted; its data is kept only for its forks")
    return state


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: StreamEvents = NoEvents()
        # False on a regional replica: a sliding TTL counts accesses in every region, so only the
        # origin can decide it (and announces it); an absolute Expires-At is the same everywhere.
        self.sliding_expiry = True
        # Sorted too: a listing by prefix starts at its first name instead of scanning them all.
        self.by_path: SortedPaths[StreamState] = SortedPaths()
        self.by_generation: dict[int, StreamState] = {}

    def load(self, loaded: list[LoadedStream], now_ms: int) -> None:
        """Rebuild states from recovered streams: forks after their sources, refcounts counted."""
        self._attach_loaded(sorted(loaded, key=lambda item: item.config.generation))
        for state in list(self.by_generation.values()):
            if self.by_path.get(state.config.path) is not state:
                state.removed = True
        for state in list(self.by_path.values()):
            if is_expired(state, now_ms, sliding=self.sliding_expiry):
                self.expire(state)
        # Leftovers of an interrupted cascade: unreferenced and unreachable, so reclaim them.
        for state in sorted(self.by_generation.values(), key=lambda s: -s.generation):
            if state.refcount == 0 and (state.removed or state.soft_deleted):
                self._detach(state)
                spawn(self.remove(state), name=f"reclaim-{state.generation}")

    def _attach_loaded(self, pending: list[LoadedStream]) -> None:
        """States for recovered streams in generation order, so a fork's source is there before it."""
        for item in pending:
            fork = item.config.fork
            source = self.by_generation.get(fork.source_generation) if fork is not None else None
            if fork is not None and source is None:
                logger.error("recovery: fork %r lost its source; dropping it", item.config.path)
                spawn(self.store.remove(item.config.generation), name="drop-orphan")
                continue
            state = StreamState.from_loaded(item, source)
            if source is not None:
                source.refcount += 1
            self.by_generation[state.generation] = state
            older = self.by_path.get(state.config.path)
            if older is not None:
                self._detach(older)
            self.by_path[state.config.path] = state

    # -- lookups ----------------------------------------------------------------------------

    def visible(self, path: str, now_ms: int) -> StreamState | None:
        """The incarnation at `path` (possibly soft-deleted), after applying expiry."""
        state = self.by_path.get(path)
        if state is not None and is_expired(state, now_ms, sliding=self.sliding_expiry):
            self.expire(state)
            return None
        return state

    def live(self, path: str, now_ms: int) -> StreamState:
        """The live stream at `path`, or NotFound / Gone."""
        return require_live(self.visible(path, now_ms))

    async def find(self, path: str, now_ms: int) -> StreamState | None:
        """`visible` as every origin sees it now: with one origin, the one in memory (a shared
        engine's registry asks the database)."""
        return self.visible(path, now_ms)

    async def by_number(self, generation: int) -> StreamState | None:
        """The incarnation numbered `generation` (also a fork source no path names any more)."""
        return self.by_generation.get(generation)

    async def find_live(self, path: str, now_ms: int) -> StreamState:
        """`live` as every origin sees it now."""
        return require_live(await self.find(path, now_ms))

    def add(self, state: StreamState) -> None:
        self.by_generation[state.generation] = state
        self.by_path[state.config.path] = state
        if state.source is not None:
            state.source.refcount += 1

    # -- leaving ----------------------------------------------------------------------------

    def expire(self, state: StreamState) -> None:
        """Expiry: the path is freed at once; data goes now, or when the last fork goes."""
        self._detach(state)
        self.events.gone(state, "expired")
        if state.refcount == 0:
            spawn(self.remove(state), name=f"expire-{state.generation}")
        elif not state.soft_deleted:
            spawn(self._persist_soft_delete(state), name=f"expire-{state.generation}")

    async def delete(self, state: StreamState) -> None:
        """DELETE: soft-delete while forks depend on the data, remove otherwise."""
        if state.refcount > 0:
            await self._persist_soft_delete(state)
            state.notify()
            self.events.gone(state, "deleted")
            return
        self._detach(state)
        self.events.gone(state, "deleted")
        await self.remove(state)

    async def _persist_soft_delete(self, state: StreamState) -> None:
        config = state.mark_soft_deleted()
        try:
            await self.store.replace_config(config)
        except StorageError:
            logger.exception("could not persist the soft delete of %r", state.config.path)

    def _detach(self, state: StreamState) -> None:
        if self.by_path.get(state.config.path) is state:
            del self.by_path[state.config.path]
        state.removed = True
        state.notify()

    async def remove(self, state: StreamState) -> None:
        """Drop an unreferenced incarnation's data, then release its source (cascading)."""
        if self.by_generation.pop(state.generation, None) is None:
            return  # already on its way out
        await state.durable()
        try:
            await self.store.remove(state.generation)
        except StorageError:
            logger.exception("could not remove stream generation %d", state.generation)
        source = state.source
        if source is not None:
            source.refcount -= 1
            if source.refcount == 0 and (source.removed or source.soft_deleted):
                self._detach(source)
                await self.remove(source)
