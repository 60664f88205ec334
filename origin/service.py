"""StreamService: create, append, close and delete, with the protocol's rules applied in order.

No HTTP here: requests arrive parsed (shared.parse) and results leave as plain values that the
handlers turn into responses. Every decision about one stream is taken synchronously on the
event loop against its validation view, then handed to the group committer; a result is
reported only once what it reports is durable.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from plugin_streams.origin.append_decision import AppendResult, check_closed_and_type, decide_append
from plugin_streams.origin.commit import Committer
from plugin_streams.origin.forks import resolve_fork
from plugin_streams.origin.registry import Registry
from plugin_streams.origin.shared_registry import database_unavailable
from plugin_streams.origin.shared_streams import SharedParts
from plugin_streams.origin.storage.base import PathTaken, Record, StorageError, Store, StreamConfig, StreamMissing
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import content_types, jsonmode
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from plugin_streams.shared.headers import (
    DEFAULT_CONTENT_TYPE,
    RETRY_AFTER,
    STREAM_EXPIRES_AT,
)
from plugin_streams.shared.parse import AppendRequest, CreateRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CreateResult:
    state: StreamState
    created: bool


@dataclass(frozen=True, slots=True)
class Appending:
    """An append decided on the event loop, whose answer waits for `waiting` (if not None) to be
    done: its own record's durability, or, for an append that writes nothing (a duplicate, a
    repeated close), that of every append accepted before it. `StreamService.settled` then gives
    the answer."""

    result: AppendResult
    request: AppendRequest
    record: Record | None
    waiting: asyncio.Future[None] | None


class StreamService:
    def __init__(
        self,
        store: Store,
        clock_ms: Callable[[], int],
        *,
        executor: Executor | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
        compact_min_bytes: int = 1024 * 1024,
    ) -> None:
        self.store = store
        self.clock_ms = clock_ms
        self.committer = Committer(store, on_batch)
        # A shared engine (postgres): other origins write the same streams, so lookups ask the
        # database, appends are decided at commit time, and changes are announced (origin.wakeups).
        self.shared: SharedParts | None = None
        if isinstance(store, PostgresStore):
            self.shared = SharedParts.build(store, clock_ms, on_batch)
            self.registry: Registry = self.shared.registry
        else:
            self.registry = Registry(store)
        self._executor = executor
        self._creating: dict[str, asyncio.Future[None]] = {}
        self.compact_min_bytes = compact_min_bytes
        self._reserved: set[str] = set()

    def reserve(self, prefix: str) -> None:
        """Streams under `prefix` are written only by callers naming it as `owner` (a KV database's
        change stream is its log: a client append there would corrupt it). Reads stay open."""
        self._reserved.add(prefix)

    def _check_owner(self, path: str, owner: str | None, *, stored: bool = False) -> None:
        if stored and owner not in self._reserved:
            raise ValueError("only the owner of a reserved stream appends its stored form")
        for prefix in self._reserved:
            if path.startswith(prefix) and owner != prefix:
                raise Forbidden(f"streams under {prefix} are written only through their own API")

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()
        else:
            self.registry.load(await self.store.open(), self.clock_ms())

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.stop()

    async def paths_from(self, start: str, limit: int) -> Iterable[str]:
        """Paths held by a stream, in order, from `start` (included), at least `limit` of them if
        there are: from memory, or from the database when other origins share the streams."""
        if self.shared is None:
            return self.registry.by_path.names_from(start)
        try:
            return await self.shared.store.paths_from(start, limit)
        except StorageError as exc:
            raise database_unavailable() from exc

    async def live(self, path: str) -> StreamState:
        """The live stream at `path` as every origin sees it now, or NotFound / Gone."""
        return await self.registry.find_live(path, self.clock_ms())

    def touch(self, state: StreamState, now_ms: int) -> None:
        """A read or write resets the sliding TTL (PROTOCOL.md §5.1); HEAD does not."""
        state.last_access_ms = now_ms
        if self.shared is not None:
            self.shared.store.touch(state.generation, now_ms, soon=state.config.ttl_seconds is not None)
        else:
            self.store.touch(state.generation, now_ms)

    # -- create -----------------------------------------------------------------------------

    async def create(self, path: str, request: CreateRequest, body: bytes, *, owner: str | None = None) -> CreateResult:
        self._check_owner(path, owner)
        while (in_progress := self._creating.get(path)) is not None:
            await asyncio.shield(in_progress)
        now = self.clock_ms()
        if request.expires is not None and request.expires.at_ms <= now:
            # It would be created already expired: 201 for a stream no request can ever see.
            raise BadRequest(f"{STREAM_EXPIRES_AT} is in the past")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._creating[path] = done
        try:
            for _ in range(3):
                existing = await self.registry.find(path, now)
                if existing is not None:
                    return await self._recreate(existing, request)
                try:
                    return CreateResult(await self._create_new(path, request, body, now), created=True)
                except PathTaken:
                    continue  # another origin created it meanwhile: compare with theirs
            raise Unavailable("the stream was created and removed again meanwhile; retry", {RETRY_AFTER: "1"})
        finally:
            del self._creating[path]
            done.set_result(None)

    async def _recreate(self, state: StreamState, request: CreateRequest) -> CreateResult:
        """PUT on an existing stream: 200 if the configuration matches, 409 otherwise."""
        if state.soft_deleted:
            raise Conflict("a deleted stream still feeding forks holds this path")
        config = state.config
        fork = config.fork
        if request.fork is None:
            same_fork = fork is None
            wanted_type = request.content_type or DEFAULT_CONTENT_TYPE
        else:
            same_fork = (
                fork is not None
                and fork.source_path == request.fork.source
                and fork.requested_offset == (str(request.fork.offset) if request.fork.offset else None)
                and fork.requested_sub_offset == request.fork.sub_offset
            )
            wanted_type = request.content_type or config.content_type
        inherited = fork is not None and request.ttl_seconds is None and request.expires is None
        same_expiry = inherited or (
            config.ttl_seconds == request.ttl_seconds
            and (config.expires.at_ms if config.expires else None)
            == (request.expires.at_ms if request.expires else None)
        )
        await state.durable()
        if not (
            same_fork
            and same_expiry
            and request.retention == config.retention
            and request.max_size == config.max_size
            and content_types.same(wanted_type, config.content_type)
            and request.closed == state.v_closed
        ):
            raise Conflict("stream exists with a different configuration")
        return CreateResult(state, created=False)

    async def _create_new(self, path: str, request: CreateRequest, body: bytes, now: int) -> StreamState:
        content_type = request.content_type or DEFAULT_CONTENT_TYPE
        records: list[Record] = []
        source = None
        fork_link = None
        ttl, expires = request.ttl_seconds, request.expires
        if request.fork is not None:
            resolved = await resolve_fork(self.registry, request.fork, request.content_type, now)
            source, fork_link, content_type = resolved.source, resolved.link, resolved.content_type
            if ttl is None and expires is None:
                ttl, expires = source.config.ttl_seconds, source.config.expires
            if resolved.prefix:
                records.append(Record(resolved.prefix, written_ms=now))
        payload = await self._payload(content_type, body, allow_empty_array=True) if body else b""
        if payload or request.closed:
            records.append(Record(payload, closed=request.closed, written_ms=now))
        if source is not None:
            source.refcount += 1  # held across the awaits below, so the source cannot vanish
        try:
            config = await self._store_new(
                lambda generation: StreamConfig(
                    generation=generation,
                    path=path,
                    content_type=content_type,
                    ttl_seconds=ttl,
                    expires=expires,
                    created_ms=now,
                    fork=fork_link,
                    retention=request.retention,
                    max_size=request.max_size,
                ),
                records,
            )
        finally:
            if source is not None:
                source.refcount -= 1
        state = StreamState(config, source, now)
        for record in records:
            state.accept(record)
            state.commit(record)
        self.registry.add(state)
        self.registry.events.created(state)
        self.apply_retention(state, now)
        return state

    async def _store_new(self, config_of: Callable[[int], StreamConfig], records: list[Record]) -> StreamConfig:
        """A new generation's stream created durably with its first records; storage errors as answers
        (PathTaken goes up: another origin created the path meanwhile, the caller compares)."""
        try:
            config = config_of(await self.store.allocate_generation())
            await self.store.create(config, records)
        except PathTaken:
            raise
        except StreamMissing:
            raise NotFound("fork source stream not found") from None  # removed (by another origin) meanwhile
        except StorageError as exc:
            raise Unavailable(f"could not create the stream: {exc}", {RETRY_AFTER: "1"}) from exc
        return config

    async def _payload(self, content_type: str, body: bytes, *, allow_empty_array: bool) -> bytes:
        """The stored form of a request body: raw bytes, or validated comma-terminated JSON."""
        if not content_types.is_json(content_type):
            return body
        if len(body) > jsonmode.INLINE_BYTES:
            # Off the loop, element by element (the thread yields the GIL between messages), and
            # joined there too: a batch of millions of tiny messages never stalls other requests.
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: jsonmode.stored_batch(body, allow_empty_array=allow_empty_array)
            )
        return jsonmode.stored_messages(body, allow_empty_array=allow_empty_array)

    # -- append and close -------------------------------------------------------------------

    async def append(
        self,
        path: str,
        request: AppendRequest,
        body: bytes,
        *,
        owner: str | None = None,
        stored: bool = False,
        expected_position: int | None = None,
    ) -> AppendResult:
        """`stored`: `body` is already in the stream's stored form (comma-terminated compact JSON
        messages for a JSON stream), rendered by the owner of a reserved stream; it is not re-parsed.
        `expected_position`: append only if the stream ends there (else TailMoved, nothing written):
        an owner that rendered `body` for that position (a KV database) learns that another origin
        wrote first."""
        self._check_owner(path, owner, stored=stored)
        now = self.clock_ms()
        state = await self.registry.find_live(path, now)
        self._admit(state, request, body, now)
        payload = b""
        if body:
            payload = body if stored else await self._payload(state.config.content_type, body, allow_empty_array=False)
        if self.shared is None:
            # The stream may have changed while the body was validated: look again.
            state = self.registry.live(path, self.clock_ms())
            appending = self._decide(state, request, body, payload, expected_position)
            waiting = appending.waiting
            if waiting is not None and not waiting.done():
                try:
                    # Another append's write is shared, not owned: leaving must not cancel it.
                    await (waiting if appending.record is not None else asyncio.shield(waiting))
                except Exception:
                    pass  # settled() turns a failed write into the answer
            return self.settled(appending)
        result = await self.shared.committer.submit(
            state,
            lambda current: decide_append(current, request, body, payload, self.clock_ms(), expected_position),
            len(payload),
        )
        self._announce(result, request)
        return result

    def append_now(self, path: str, request: AppendRequest, body: bytes) -> Appending | None:
        """`append` of a client's body, decided without leaving the event loop (for the fast lane):
        the same checks in the same order, then the same commit. None if this append cannot be
        decided that way (a shared engine asks the database; a large JSON body is validated off
        the loop): then `append` decides it. Refusals raise, as in `append`, having changed nothing."""
        if self.shared is not None:
            return None
        self._check_owner(path, None)
        now = self.clock_ms()
        state = self.registry.live(path, now)
        json_mode = content_types.is_json(state.config.content_type)
        if json_mode and len(body) > jsonmode.INLINE_BYTES:
            return None
        self._admit(state, request, body, now)
        payload = body
        if body and json_mode:
            payload = jsonmode.stored_messages(body, allow_empty_array=False)
        return self._decide(state, request, body, payload, None)

    def settled(self, appending: Appending) -> AppendResult:
        """The answer of an append once its `waiting` is done; a failed write raises Unavailable."""
        waiting = appending.waiting
        if waiting is not None:
            failure = waiting.exception()
            if isinstance(failure, Unavailable):
                raise failure
            if failure is not None:
                raise Unavailable("storage failure", {RETRY_AFTER: "1"}) from failure
        result = appending.result
        if appending.record is None:
            return replace(result, next_position=result.state.tail)
        self._announce(result, appending.request)
        return result

    def _admit(self, state: StreamState, request: AppendRequest, body: bytes, now: int) -> None:
        """What is checked before the body is looked at (it resets the sliding TTL first)."""
        self.touch(state, now)
        check_closed_and_type(state, request, body)
        if state.config.max_size is not None and len(body) > state.config.max_size:
            raise PayloadTooLarge(f"this stream accepts appends of at most {state.config.max_size} bytes")

    def _decide(
        self, state: StreamState, request: AppendRequest, body: bytes, payload: bytes, expected: int | None
    ) -> Appending:
        record, result = decide_append(state, request, body, payload, self.clock_ms(), expected)
        if record is None:
            # Only a write still in flight is waited for: one already done (even a failed one,
            # whose records were rolled back) has no bearing on a duplicate or repeated close.
            last = state.last_write
            return Appending(result, request, None, last if last is not None and not last.done() else None)
        return Appending(result, request, record, self.committer.submit(state, record))

    def _announce(self, result: AppendResult, request: AppendRequest) -> None:
        """A durable append's news: to the registry's listeners, and to retention."""
        if result.appended:
            if result.stored:
                self.registry.events.appended(result.state)
            if request.closed:
                self.registry.events.closed(result.state)
            self.apply_retention(result.state, self.clock_ms())

    # -- retention --------------------------------------------------------------------------

    def apply_retention(self, state: StreamState, now_ms: int) -> None:
        """Move the earliest readable position forward, and reclaim disk once enough is dropped."""
        if state.config.retention is None or state.removed:
            return
        point = state.retention_point(now_ms)
        if point <= state.retained_from:
            return
        state.retained_from = point
        first_kept = state.starts[0] if state.starts else state.tail
        if point - first_kept >= self.compact_min_bytes and state.maintenance is None:
            if self.shared is not None:
                # Between this origin's commits (the sync lock), whichever origin gets there first:
                # a drop below what another origin already dropped changes nothing.
                state.maintenance = lambda: self._compact_shared(state)  # marks a compaction under way
                spawn(state.maintenance(), name=f"compact-{state.generation}")
            else:
                self.committer.run_between_writes(state, lambda: self._compact(state))

    async def _compact_shared(self, state: StreamState) -> None:
        try:
            async with state.sync_lock:
                await self._compact(state)
        except StorageError:
            logger.warning("could not reclaim the retained-out data of %r", state.config.path)
        finally:
            state.maintenance = None

    async def _compact(self, state: StreamState) -> None:
        count = bisect_left(state.starts, state.retained_from)
        if count == 0 or state.removed:
            return
        position = state.starts[count] if count < len(state.starts) else state.tail
        await self.store.drop_before(state.generation, state.dropped + count, position)
        state.forget_records(count)

    # -- delete -----------------------------------------------------------------------------

    async def delete(self, path: str, *, owner: str | None = None) -> None:
        self._check_owner(path, owner)
        state = await self.registry.find_live(path, self.clock_ms())
        await self.registry.delete(state)

    # -- shutdown ---------------------------------------------------------------------------

    stopping = False
    ready = False  # recovery finished

    def begin_shutdown(self) -> None:
        """Wake every live reader so long-polls answer and SSE responses end."""
        self.stopping = True
        for state in self.registry.by_generation.values():
            state.notify()

    async def drain(self) -> None:
        """Wait for every accepted append to become durable."""
        for state in list(self.registry.by_generation.values()):
            try:
                await state.durable()
            except Exception:
                pass
