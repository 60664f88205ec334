"""Group commit: appends to one stream queue up while a write is in flight, then go together.

One batch per stream is being written at any time; every append that arrives meanwhile joins
the next batch, so N concurrent writers cost one write and one fdatasync, not N. Streams commit
independently and in parallel. A record becomes visible to readers (committed view, waiters
woken) only after the store says it is durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from plugin_streams.origin.storage.base import Record, StorageError, Store
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import Unavailable

logger = logging.getLogger(__name__)

#: Upper bound on one batch, so a burst of large appends does not become one giant write.
MAX_BATCH_BYTES = 8 * 1024 * 1024


class Committer:
    def __init__(self, store: Store, on_batch: Callable[[int, int, float], None] | None = None) -> None:
        self._store = store
        self._on_batch = on_batch  # (records, payload bytes, seconds) per durable batch, for metrics

    def submit(self, state: StreamState, record: Record) -> asyncio.Future[None]:
        """Queue an accepted record; the future resolves once it is durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.queue.append((record, future))
        state.last_write = future
        self._kick(state)
        return future

    def run_between_writes(self, state: StreamState, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` (retention compaction) with no write of this stream in flight."""
        state.maintenance = job
        self._kick(state)

    def _kick(self, state: StreamState) -> None:
        if not state.flushing:
            state.flushing = True
            spawn(self._flush(state), name=f"commit-{state.generation}")

    async def _flush(self, state: StreamState) -> None:
        try:
            while state.queue or state.maintenance is not None:
                if state.maintenance is not None:
                    job, state.maintenance = state.maintenance, None
                    try:
                        await job()
                    except Exception:
                        logger.exception("maintenance of %r failed", state.config.path)
                    continue
                batch = _take_batch(state)
                records = [record for record, _ in batch]
                started = time.perf_counter()
                try:
                    await self._store.append(state.generation, records)
                except StorageError as exc:
                    self._fail(state, batch, exc)
                    continue
                for record in records:
                    state.commit(record)
                state.notify()
                if self._on_batch is not None:
                    elapsed = time.perf_counter() - started
                    self._on_batch(len(records), sum(len(r.payload) for r in records), elapsed)
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            state.flushing = False

    @staticmethod
    def _fail(state: StreamState, batch: list[tuple[Record, asyncio.Future[None]]], exc: Exception) -> None:
        # Everything queued behind the failed batch was validated against it: fail it too.
        failed = batch + state.queue
        state.queue = []
        state.rollback()
        logger.error("append to %r failed: %s", state.config.path, exc)
        for _, future in failed:
            if not future.done():
                future.set_exception(Unavailable("storage failure; the append was not saved"))
                future.exception()  # mark retrieved: the submitter may be gone


def _take_batch(state: StreamState) -> list[tuple[Record, asyncio.Future[None]]]:
    size = 0
    for i, (record, _) in enumerate(state.queue):
        size += len(record.payload)
        if size > MAX_BATCH_BYTES and i > 0:
            batch, state.queue = state.queue[:i], state.queue[i:]
            return batch
    batch, state.queue = state.queue, []
    return batch
