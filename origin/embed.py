"""The origin, embedded: what a regional replica needs of the origin's engine, and nothing more.

A regional replica (edge.region) keeps the origin's streams byte for byte, offset for offset, in
the origin's own storage engine, and answers reads with the origin's own read handlers. This
module is the one seam it goes through: open the engine, install the incarnations the origin
describes, apply the origin's records at the origin's positions, drop incarnations, look them
up, and build the read handlers (the protocol's GET and HEAD; the REST API's describe, read and
tail). Nothing in edge/ imports any other origin module (an
import-linter contract in pyproject.toml checks it), so the registry, the service and the
fields of `StreamState` can change behind this API without the replica noticing.

Every change to an incarnation goes through `EmbeddedOrigin`; the replica only reads the
handles it gets back (their tail, closure and removal tell it how far it has caught up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from plugin_streams.origin.config import DEFAULT_CHUNK_SIZE, OriginConfig
from plugin_streams.origin.handlers import StreamHandlers
from plugin_streams.origin.limits import LiveLimiter
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.rest.messages import MessageHandlers
from plugin_streams.origin.rest.routes import REST_PREFIX
from plugin_streams.origin.rest.streams import StreamResources
from plugin_streams.origin.rest.tail import TailHandlers
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import FileStore
from plugin_streams.origin.storage.base import Record, StorageError, Store, StreamConfig
from plugin_streams.origin.storage.config_fields import config_from_fields
from plugin_streams.origin.storage.tail_cache import TailCachedStore
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.clock import WallClock
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.replication import RecordFrame

# Re-exported for the replica. StreamConfig and config_from_fields: the replication API describes
# an incarnation in the origin's own configuration fields, and the replica reads them with the
# origin's own parser, so both sides agree field by field. StreamState: the handle of a local
# incarnation, which the replica holds and reads (tail, closed, removed, chain) but never writes.
__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Diverged",
    "EmbeddedOrigin",
    "LocalReads",
    "LocalRest",
    "ReadSettings",
    "StreamConfig",
    "StreamState",
    "config_from_fields",
]

#: Bytes of recent log data the embedded engine keeps in memory for readers at the tail.
TAIL_CACHE_BYTES = 64 * 1024 * 1024


class Diverged(Exception):
    """A replicated record does not start at the local tail (the feed must resume from the tail)."""


class LocalReads(Protocol):
    """The origin's GET and HEAD of a stream, answered from the embedded engine."""

    async def get(self, request: web.Request, path: str) -> web.StreamResponse: ...

    async def head(self, request: web.Request, path: str) -> web.Response: ...


class LocalRest(Protocol):
    """The origin's REST reads of a named stream, answered from the embedded engine.

    `describe` is `GET .../streams/:name`, `read` is `GET .../:name/read` and `tail` is
    `GET .../:name/tail` (SSE or long-poll, as the query says). Each checks access with the
    policy it was built with and raises ProtocolError, which the caller words as a REST error.
    Listing (`GET .../streams`) is not here: a replica holds only the streams it replicates.
    """

    async def describe(self, request: web.Request, name: str) -> web.Response: ...

    async def read(self, request: web.Request, name: str) -> web.Response: ...

    async def tail(self, request: web.Request, name: str) -> web.StreamResponse: ...


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """The embedding process's settings for the reads it answers with the origin's handlers."""

    long_poll_timeout: float
    sse_max_age: float
    sse_keepalive: float
    sse_client_buffer: int
    sse_write_timeout: float
    chunk_size: int = DEFAULT_CHUNK_SIZE  # must be the origin's: chunk windows and ETags must match

    def origin_config(self) -> OriginConfig:
        return OriginConfig(
            chunk_size=self.chunk_size,
            long_poll_timeout=self.long_poll_timeout,
            sse_max_age=self.sse_max_age,
            sse_keepalive=self.sse_keepalive,
            sse_client_buffer=self.sse_client_buffer,
            sse_write_timeout=self.sse_write_timeout,
        )


class _RestReads:
    """LocalRest: the origin's own REST resources, message and tail handlers over one service."""

    def __init__(self, service: StreamService, config: OriginConfig, policy: AccessPolicy) -> None:
        metrics = OriginMetrics(CollectorRegistry())  # private: the embedding process exports its own
        self._streams = StreamResources(service, policy, REST_PREFIX)
        self._messages = MessageHandlers(service, config, policy)
        limiter = LiveLimiter(config.max_live_connections)
        self._tails = TailHandlers(service, config, policy, limiter, metrics, self._messages)

    async def describe(self, request: web.Request, name: str) -> web.Response:
        return await self._streams.describe(request, name)

    async def read(self, request: web.Request, name: str) -> web.Response:
        return await self._messages.read(request, name)

    async def tail(self, request: web.Request, name: str) -> web.StreamResponse:
        return await self._tails.tail(request, name)


class EmbeddedOrigin:
    """The origin's engine and service inside another process, filled by replication, not by clients."""

    def __init__(self, store: Store, clock_ms: WallClock) -> None:
        self._clock_ms = clock_ms
        self._service = StreamService(store, clock_ms)
        # A sliding TTL counts reads in every region, so only the origin can decide it (and
        # announces the expiry); an absolute Expires-At is the same everywhere.
        self._service.registry.sliding_expiry = False

    @classmethod
    def on_disk(cls, directory: str, clock_ms: WallClock) -> EmbeddedOrigin:
        """The durable file engine in `directory` (fsync on every commit: the replica is a copy to trust)."""
        return cls(TailCachedStore(FileStore(directory, fsync=True), TAIL_CACHE_BYTES), clock_ms)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> list[StreamState]:
        """Recover the store and be ready; returns every recovered incarnation, oldest first."""
        await self._service.start()
        self._service.ready = True
        return sorted(self._service.registry.by_generation.values(), key=lambda state: state.generation)

    def begin_shutdown(self) -> None:
        """Wake every local reader: long-polls answer, SSE responses end."""
        self._service.begin_shutdown()

    async def close(self) -> None:
        """Wait until every applied record is durable, then close the store."""
        await self._service.drain()
        await self._service.store.close()

    # -- lookups ----------------------------------------------------------------------------

    def at(self, path: str) -> StreamState | None:
        """The incarnation holding `path` (possibly soft-deleted while local forks read it)."""
        return self._service.registry.by_path.get(path)

    def incarnation(self, generation: int) -> StreamState | None:
        """The incarnation of `generation`, at its path or kept only as a fork's source."""
        return self._service.registry.by_generation.get(generation)

    def held(self) -> list[StreamState]:
        """Every incarnation that holds a path."""
        return list(self._service.registry.by_path.values())

    def __len__(self) -> int:
        """Paths held."""
        return len(self._service.registry.by_path)

    def feeds_forks(self, state: StreamState) -> bool:
        """Whether local forks still read this incarnation's data."""
        return state.refcount > 0

    async def changed(self, state: StreamState) -> None:
        """Until the incarnation next changes (new data, closure, removal)."""
        await asyncio.shield(state.change_future())

    # -- replication ------------------------------------------------------------------------

    async def install(self, config: StreamConfig, source: StreamState | None, retained_from: int) -> StreamState:
        """Create the incarnation the origin described, empty, from `retained_from` on.

        `source` is the local incarnation a fork reads below its fork position. The new one takes
        its path unless a newer incarnation holds it; then it is kept only as a fork's source.
        """
        base = config.fork.position if config.fork is not None else 0
        store = self._service.store
        try:
            await store.create(config, [])
            if retained_from > base:
                # The origin no longer keeps the start: begin at its earliest record instead.
                await store.drop_before(config.generation, 1, retained_from)
        except StorageError as exc:
            raise Unavailable(f"replica storage failed: {exc}") from exc
        state = StreamState(config, source, self._clock_ms())
        if retained_from > base:
            state.dropped = 1
            state.retained_from = state.tail = state.v_tail = retained_from
        registry = self._service.registry
        registry.by_generation[state.generation] = state
        if source is not None:
            source.refcount += 1
        holder = registry.by_path.get(config.path)
        if holder is None or holder.generation < config.generation:
            registry.by_path[config.path] = state
        else:
            state.removed = True
        return state

    async def apply(self, state: StreamState, frames: Sequence[RecordFrame]) -> int | None:
        """Append the origin's records at the origin's positions, as one group commit.

        Returns once they are durable, with the wall-clock time (unix ms) that was seen at (and
        retention applied at); None if the incarnation is already gone, and nothing was applied.
        Raises Diverged when a record does not start at the local tail.
        """
        if state.removed and state.generation not in self._service.registry.by_generation:
            return None
        committer = self._service.committer
        writes = []
        for frame in frames:
            if frame.start != state.v_tail:
                raise Diverged(f"record at {frame.start}, replica tail at {state.v_tail}")
            record = Record(frame.payload, closed=frame.closed, written_ms=frame.written_ms)
            state.accept(record)
            writes.append(committer.submit(state, record))
        await asyncio.gather(*writes)
        now = self._clock_ms()
        self._service.apply_retention(state, now)
        return now

    async def drop(self, state: StreamState) -> None:
        """Forget an incarnation: soft-deleted while local forks still read it, removed otherwise."""
        registry = self._service.registry
        if registry.by_path.get(state.config.path) is state:
            if not state.soft_deleted:
                await registry.delete(state)
        elif state.refcount == 0 and state.generation in registry.by_generation:
            await registry.remove(state)
        state.notify()

    # -- serving ----------------------------------------------------------------------------

    def read_handlers(self, settings: ReadSettings) -> LocalReads:
        """The origin's protocol read handlers over this engine, with the embedding process's settings.

        Their metrics stay private: the embedding process exports its own, and ds_origin_* is the origin's.
        """
        config = settings.origin_config()
        return StreamHandlers(
            self._service, config, OriginMetrics(CollectorRegistry()), LiveLimiter(config.max_live_connections)
        )

    def rest_handlers(self, settings: ReadSettings, policy: AccessPolicy) -> LocalRest:
        """The origin's REST read handlers over this engine; they check access with `policy`
        (the embedding process's: with access control off, every stream is readable)."""
        return _RestReads(self._service, settings.origin_config(), policy)
