"""SharedCommitter: group commit for streams that several origins append to (postgres engine).

With one origin, an append is decided in memory when it arrives and the batch is only written.
With several, the state an append is decided against may be stale: another origin may have
appended, closed or deleted the stream a moment ago. So appends queue undecided; the committer
decides each batch against the stream's state and hands it to the database with the record
count it was decided at (ds_append). If another origin appended in between, the database refuses
it, the committer catches up on those records and decides the batch again: a duplicate of a
retry that just landed through another origin becomes a 204, a gap becomes a gap. Bytes can
never interleave and an offset is never given twice, and no lock is held across round trips.

The database call runs in the committer's own task: a client that disconnects or times out never
cancels it (a cancelled synchronous-commit wait would leave a commit the standby may not have).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, cast

from plugin_streams.origin.storage.base import Record, StorageError
from plugin_streams.origin.storage.postgres.store import AppendStatus, PostgresStore
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import ProtocolError, Unavailable
from plugin_streams.shared.headers import RETRY_AFTER

if TYPE_CHECKING:
    from plugin_streams.origin.append_decision import AppendResult
    from plugin_streams.origin.shared_registry import SharedRegistry

logger = logging.getLogger(__name__)

#: Appends decided and written together at most (their payloads: origin.commit's bound applies too).
MAX_BATCH: Final = 1024
MAX_BATCH_BYTES: Final = 8 * 1024 * 1024
#: Attempts of one batch before its appends get 503 (each failed attempt means another origin
#: made progress on the stream, so this only trips under extreme contention).
MAX_ATTEMPTS: Final = 50

#: Decides one append against a stream's validation view: (the record to write, or None for an
#: answer without a write) and the answer; raises the protocol error that refuses it.
Decide = Callable[[StreamState], "tuple[Record | None, AppendResult]"]


@dataclass(slots=True)
class PendingAppend:
    decide: Decide
    size: int
    future: asyncio.Future[AppendResult]


class SharedCommitter:
    def __init__(
        self,
        store: PostgresStore,
        registry: SharedRegistry,
        *,
        on_batch: Callable[[int, int, float], None] | None = None,
        on_commit: Callable[[StreamState], None] | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._on_batch = on_batch
        self._on_commit = on_commit  # after each durable batch (the NOTIFY to other origins)

    def submit(self, state: StreamState, decide: Decide, size: int) -> asyncio.Future[AppendResult]:
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        state.pending.append(PendingAppend(decide, size, future))
        if not state.flushing:
            state.flushing = True
            spawn(self._flush(state), name=f"shared-commit-{state.generation}")
        return future

    async def _flush(self, state: StreamState) -> None:
        try:
            while state.pending:
                batch = _take_batch(state)
                try:
                    async with state.sync_lock:
                        await self._commit(state, batch)
                except Exception as exc:  # never leave an append unanswered
                    logger.exception("append batch to %r failed", state.config.path)
                    _fail(batch, Unavailable(f"the append was not saved: {exc}", {RETRY_AFTER: "1"}))
        finally:
            state.flushing = False

    async def _commit(self, state: StreamState, batch: list[PendingAppend]) -> None:
        metrics = self._store.metrics
        for _ in range(MAX_ATTEMPTS):
            answers = _decide_all(state, batch)
            records = [record for record, _ in answers if isinstance(record, Record)]
            if not records:
                _answer(state, batch, answers)
                return
            started = time.perf_counter()
            try:
                outcome = await self._store.append_if(state.generation, records, state.record_count)
            except StorageError as exc:
                state.rollback()
                # Its fate is unknown (the connection may have died after the commit): the next batch
                # finds out by its record count; an idempotent producer's retry finds out as a 204.
                _fail(batch, Unavailable(f"the database did not confirm the append: {exc}", {RETRY_AFTER: "1"}))
                return
            elapsed = time.perf_counter() - started
            if metrics is not None:
                metrics.committed(elapsed)
            if outcome.status is AppendStatus.APPENDED:
                self._committed(state, records, elapsed)
                _answer(state, batch, answers)
                return
            state.rollback()
            if metrics is not None:
                metrics.conflict()
            await self._registry.catch_up_locked(state)  # then decide again
            if outcome.status is AppendStatus.MISSING:
                state.removed = True
        _fail(batch, Unavailable("too many origins appended to this stream at once; retry", {RETRY_AFTER: "1"}))

    def _committed(self, state: StreamState, records: list[Record], elapsed: float) -> None:
        for record in records:
            state.commit(record)
        state.notify()
        if self._on_batch is not None:
            self._on_batch(len(records), sum(len(r.payload) for r in records), elapsed)
        if self._on_commit is not None:
            self._on_commit(state)


def _decide_all(state: StreamState, batch: list[PendingAppend]) -> list[tuple[Record | ProtocolError | None, object]]:
    answers: list[tuple[Record | ProtocolError | None, object]] = []
    for pending in batch:
        try:
            answers.append(pending.decide(state))
        except ProtocolError as exc:
            answers.append((exc, None))
    return answers


def _answer(
    state: StreamState, batch: list[PendingAppend], answers: list[tuple[Record | ProtocolError | None, object]]
) -> None:
    """Answer each append; one that wrote nothing (a duplicate, a repeated close) names the tail."""
    for pending, (record, result) in zip(batch, answers, strict=True):
        if pending.future.done():
            continue
        if isinstance(record, ProtocolError):
            pending.future.set_exception(record)
            pending.future.exception()
        elif record is None:
            pending.future.set_result(replace(cast("AppendResult", result), next_position=state.tail))
        else:
            pending.future.set_result(cast("AppendResult", result))


def _fail(batch: list[PendingAppend], error: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
            pending.future.exception()  # retrieved: the submitter may be gone


def _take_batch(state: StreamState) -> list[PendingAppend]:
    size = 0
    for i, pending in enumerate(state.pending):
        size += pending.size
        if i > 0 and (size > MAX_BATCH_BYTES or i >= MAX_BATCH):
            batch, state.pending = state.pending[:i], state.pending[i:]
            return batch
    batch, state.pending = state.pending, []
    return batch
