"""The blocking KV store and queue: `SyncStreams(url).kv("app")`, run on the sync client's loop thread.

Every method blocks until the async call finishes; `list` and `dlq` return iterators that page
as they go. Callbacks and handlers (`watch`, `listen_queue`) run on worker threads, one at a
time per watch and per listener worker, so they may use this client themselves; a queue handler
returns `kv.atomic()` (not committed) to have it committed with the message's ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from plugin_streams._kv_atomic import AtomicBuilder
from plugin_streams._kv_models import CommitResult, DeadLetter, GroupStats, KvChange, KvEntry, QueueMessage, Token
from plugin_streams._kv_wire import KeyPart, KvValue
from plugin_streams.queue import DEFAULT_GROUP, DEFAULT_LEASE_MS
from plugin_streams.queue_listener import DEFAULT_WAIT_MS
from plugin_streams.sync import _iterate, _LoopThread

if TYPE_CHECKING:
    from plugin_streams._kv_watch import KvWatch
    from plugin_streams.kv import Kv
    from plugin_streams.queue import Queue
    from plugin_streams.queue_listener import QueueListener
    from plugin_streams.tail import RetryHook

SyncHandler = Callable[[QueueMessage], AtomicBuilder | None]


class SyncAtomicOperation(AtomicBuilder):
    def __init__(self, loop: _LoopThread, kv: Kv) -> None:
        super().__init__()
        self._loop = loop
        self._kv = kv

    def commit(self) -> CommitResult:
        """Commit; `ok` False (nothing written) when a check failed."""
        operation = self._kv.atomic()
        operation.checks, operation.mutations = list(self.checks), list(self.mutations)
        return self._loop.run(operation.commit())


class _SyncRunning:
    """A running watch or listener: `stop()`, and `wait()` for its end (its error is raised there)."""

    def __init__(self, loop: _LoopThread, running: KvWatch | QueueListener) -> None:
        self._loop = loop
        self._running = running
        self._done: Future[None] = loop.submit(self._wait())

    async def _wait(self) -> None:
        await self._running.done

    @property
    def done(self) -> bool:
        return self._done.done()

    def stop(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._running.stop)

    def wait(self, timeout: float | None = None) -> None:
        self._done.result(timeout)


class SyncWatch(_SyncRunning):
    @property
    def offset(self) -> str | None:
        """The exact resume point (see `KvWatch.offset`)."""
        watch: KvWatch = self._running  # type: ignore[assignment]
        return watch.offset


class SyncQueueListener(_SyncRunning):
    @property
    def listener(self) -> QueueListener:
        listener: QueueListener = self._running  # type: ignore[assignment]
        return listener


class SyncQueue:
    def __init__(self, loop: _LoopThread, queue: Queue) -> None:
        self._loop = loop
        self._queue = queue
        self.group = queue.group

    def create(self, start: str = "-1") -> None:
        self._loop.run(self._queue.create(start))

    def lease(
        self, worker: str, *, lease_ms: int = DEFAULT_LEASE_MS, max_messages: int = 1, wait_ms: int = 0
    ) -> list[QueueMessage]:
        return self._loop.run(self._queue.lease(worker, lease_ms=lease_ms, max_messages=max_messages, wait_ms=wait_ms))

    def ack(self, token: Token, atomic: AtomicBuilder | None = None) -> CommitResult:
        return self._loop.run(self._queue.ack(token, atomic))

    def nack(self, token: Token, error: str, *, delay_ms: int | None = None) -> None:
        self._loop.run(self._queue.nack(token, error, delay_ms=delay_ms))

    def extend(self, token: Token, lease_ms: int = DEFAULT_LEASE_MS) -> None:
        self._loop.run(self._queue.extend(token, lease_ms))

    def term(self, token: Token, error: str) -> None:
        self._loop.run(self._queue.term(token, error))

    def dlq(self, *, limit: int = 100) -> Iterator[DeadLetter]:
        return _iterate(self._loop, self._queue.dlq(limit=limit))

    def redrive(self, ids: Iterable[str] | None = None) -> int:
        return self._loop.run(self._queue.redrive(ids))

    def reset(self, start: str = "-1") -> None:
        self._loop.run(self._queue.reset(start))

    def stats(self) -> GroupStats:
        return self._loop.run(self._queue.stats())


class SyncKv:
    """The blocking `Kv` (see `plugin_streams.kv` for what each method does)."""

    def __init__(self, loop: _LoopThread, kv: Kv) -> None:
        self._loop = loop
        self._kv = kv
        self.db = kv.db

    def get(self, key: Sequence[KeyPart]) -> KvEntry:
        return self._loop.run(self._kv.get(key))

    def get_many(self, keys: Iterable[Sequence[KeyPart]]) -> list[KvEntry]:
        return self._loop.run(self._kv.get_many(keys))

    def list(
        self,
        prefix: Sequence[KeyPart] | None = None,
        *,
        start: Sequence[KeyPart] | None = None,
        end: Sequence[KeyPart] | None = None,
        limit: int | None = None,
        reverse: bool = False,
        batch_size: int = 100,
    ) -> Iterator[KvEntry]:
        entries = self._kv.list(prefix, start=start, end=end, limit=limit, reverse=reverse, batch_size=batch_size)
        return _iterate(self._loop, entries)

    def set(self, key: Sequence[KeyPart], value: KvValue, *, expire_in_ms: float | None = None) -> CommitResult:
        return self._loop.run(self._kv.set(key, value, expire_in_ms=expire_in_ms))

    def delete(self, key: Sequence[KeyPart]) -> CommitResult:
        return self._loop.run(self._kv.delete(key))

    def atomic(self) -> SyncAtomicOperation:
        return SyncAtomicOperation(self._loop, self._kv)

    def enqueue(
        self,
        value: KvValue,
        *,
        delay: float | None = None,
        backoff_schedule: Iterable[float] | None = None,
        keys_if_undelivered: Iterable[Sequence[KeyPart]] | None = None,
    ) -> CommitResult:
        return self._loop.run(
            self._kv.enqueue(
                value,
                delay=delay,
                backoff_schedule=backoff_schedule,
                keys_if_undelivered=keys_if_undelivered,
            )
        )

    def queue(self, group: str = DEFAULT_GROUP) -> SyncQueue:
        return SyncQueue(self._loop, self._kv.queue(group))

    def queue_stats(self) -> dict[str, GroupStats]:
        return self._loop.run(self._kv.queue_stats())

    def watch(
        self,
        prefixes: Iterable[Sequence[KeyPart]],
        callback: Callable[[KvChange], None],
        *,
        durable: bool = True,
        resume_from: str | None = None,
        mode: str = "sse",
        on_retry: RetryHook | None = None,
        give_up_after: float | None = None,
    ) -> SyncWatch:
        """As `Kv.watch`; the callback runs on a worker thread, `on_retry` on the loop thread."""
        user_callback = callback
        keys = [tuple(prefix) for prefix in prefixes]

        async def deliver(change: KvChange) -> None:
            await asyncio.to_thread(user_callback, change)

        async def start() -> KvWatch:
            return self._kv.watch(
                keys,
                deliver,
                durable=durable,
                resume_from=resume_from,
                mode=mode,
                on_retry=on_retry,
                give_up_after=give_up_after,
            )

        return SyncWatch(self._loop, self._loop.run(start()))

    def listen_queue(
        self,
        handler: SyncHandler,
        *,
        group: str = DEFAULT_GROUP,
        concurrency: int = 1,
        lease_ms: int = DEFAULT_LEASE_MS,
        wait_ms: int = DEFAULT_WAIT_MS,
        worker: str | None = None,
    ) -> SyncQueueListener:
        """As `Kv.listen_queue`; the handler runs on worker threads and may return `kv.atomic()`."""
        user_handler = handler

        async def handle(message: QueueMessage) -> Any:
            return await asyncio.to_thread(user_handler, message)

        async def start() -> QueueListener:
            return self._kv.listen_queue(
                handle, group=group, concurrency=concurrency, lease_ms=lease_ms, wait_ms=wait_ms, worker=worker
            )

        return SyncQueueListener(self._loop, self._loop.run(start()))
