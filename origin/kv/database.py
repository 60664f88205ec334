"""One KV database: its materialised state (key index and queue), rebuilt from its change stream,
and the single writer that turns decisions into logged, durable events.

Writes. Every write is a *decision*: a function of the current state and the time that returns
the draft of what it changes (or an empty draft) and its answer. The writer takes the decisions
waiting at a moment as one batch: it runs them one after another, renders each non-empty draft as
one event (origin/kv/events.py), applies it at once so the next decision of the batch sees it (two
leases never pick one message, a check sees the commit before it), then appends the whole batch as
one append to the change stream and answers only once it is durable. Concurrent commits thus
share one fsync, as stream appends do.

Reads see only durable state. While a batch is applied but not yet durable the state is *dirty*;
a read arriving then waits for that batch to end, and the writer yields to such readers before it
starts the next batch, so a read never returns a value a crash could take back.

If an append fails the state in memory is ahead of the log: it is rebuilt from the log and every
decision of the batch is answered 503, having changed nothing durable.

Snapshots (origin/kv/snapshots.py) read the state between batches (`while_still`): then it is
exactly the durable state at `offset`, and it holds still while a thread copies it. Start-up
restores the newest snapshot and replays only the events after its offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from plugin_streams.origin.kv.events import Draft, Event, render
from plugin_streams.origin.kv.index import KvIndex
from plugin_streams.origin.kv.log import ChangeLog, LogMoved
from plugin_streams.origin.kv.queues import QueueState
from plugin_streams.origin.kv.queues.records import Enqueued
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.clock import WallClock
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.headers import RETRY_AFTER
from plugin_streams.shared.offsets import Offset

logger = logging.getLogger(__name__)
R = TypeVar("R")
T = TypeVar("T")
Decision = Callable[[int], tuple[Draft, R]]
#: Told, once a batch is durable, each logged decision's seconds since its write() (metrics).
DurableHook = Callable[[Sequence[float]], None]
#: Times a write batch is decided before its decisions get 503: each new attempt means another
#: origin wrote the same database first (postgres engine); with one origin there is one attempt.
WRITE_ATTEMPTS = 5


class Restorable(Protocol):
    """A snapshot's state, as `load` restores it (origin/kv/snapshots.py DatabaseSnapshot)."""

    @property
    def offset(self) -> Offset: ...
    @property
    def index(self) -> KvIndex: ...
    @property
    def queue(self) -> QueueState: ...


@dataclass(frozen=True, slots=True)
class Written(Generic[R]):
    """A decision's answer, and the event that logged it (None when it changed nothing)."""

    event: Event | None
    value: R


@dataclass(slots=True)
class _Pending(Generic[R]):
    decide: Decision[R]
    answer: asyncio.Future[Written[R]]
    started: float = field(default_factory=time.perf_counter)


class KvDatabase:
    def __init__(self, name: str, log: ChangeLog, clock_ms: WallClock, on_durable: DurableHook | None = None) -> None:
        self.name = name
        self.on_durable = on_durable
        self.log = log
        self.clock_ms = clock_ms
        self.index = KvIndex()
        self.queue = QueueState()
        self.offset: Offset | None = None  # just after the last applied event
        self.events_applied = 0
        self._pending: list[_Pending[object]] = []
        self._writer: asyncio.Task[None] | None = None
        self._dirty = False
        self._readers: list[asyncio.Future[None]] = []
        self._queue_waiters: list[asyncio.Future[None]] = []
        # Held by the writer for each batch, and by `while_still` while a thread reads the state.
        self._still = asyncio.Lock()

    # ---- start-up ------------------------------------------------------------------------------

    async def load(self, snapshot: Restorable | None = None) -> None:
        """Rebuild the state: from `snapshot` and the events after its offset, or from the whole log.

        The caller has checked the snapshot against the log (`ChangeLog.why_not_after`)."""
        await self.log.refresh()
        if snapshot is None:
            self.index, self.queue, self.offset = KvIndex(), QueueState(), None
        else:
            self.index, self.queue, self.offset = snapshot.index, snapshot.queue, snapshot.offset
        async for events in self.log.events(after=self.offset):
            for event in events:
                self._apply(event)

    def _apply(self, event: Event) -> None:
        draft = event.draft
        self.index.install(
            ((change.key, change.value, change.expires_at_ms) for change in draft.changes),
            event.versionstamp,
            event.at_ms,
        )
        position = str(event.offset)
        for message in event.messages():
            self.queue.apply(Enqueued(message), position)
        for record in draft.queue:
            self.queue.apply(record, position)
        self.offset = event.offset
        self.events_applied += 1
        if draft.enqueues or draft.queue:
            self._wake(self._queue_waiters)

    # ---- reads ---------------------------------------------------------------------------------

    async def readable(self) -> None:
        """Return once the state holds nothing that is not durable, and everything other origins
        logged before this call (postgres engine); read synchronously after it."""
        if self.log.shared:
            await self.catch_up()
        while self._dirty:
            waiter = asyncio.get_running_loop().create_future()
            self._readers.append(waiter)
            await waiter

    def queue_changed(self) -> asyncio.Future[None]:
        """A future resolved at the next change of the queue (an enqueue, an answer, an expiry...)."""
        waiter = asyncio.get_running_loop().create_future()
        self._queue_waiters.append(waiter)
        return waiter

    async def while_still(self, read: Callable[[], T]) -> T:
        """`read()` run in a thread between batches: the state is the durable state at `offset` and
        nothing changes it until `read` returns (reads keep being answered; writes wait)."""
        async with self._still:
            return await asyncio.to_thread(read)

    # ---- writes --------------------------------------------------------------------------------

    async def write(self, decide: Decision[R]) -> Written[R]:
        """Decide, log and apply; the answer comes once its event is durable. A client that goes
        away does not cancel a decision already queued: its event may be logged all the same."""
        answer: asyncio.Future[Written[R]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(decide, answer))  # type: ignore[arg-type]
        if self._writer is None:
            self._writer = spawn(self._write_batches(), name=f"kv-writer:{self.name}")
        return await asyncio.shield(answer)

    async def _write_batches(self) -> None:
        try:
            while self._pending:
                async with self._still:
                    batch, self._pending = self._pending, []
                    await self._write_batch(batch)
                # Readers woken by this batch run before the next batch dirties the state again.
                await asyncio.sleep(0)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[_Pending[object]]) -> None:
        for _ in range(WRITE_ATTEMPTS):
            try:
                await self._catch_up_locked()
                # Events are rendered for the end of what the state has applied: if the log moved on
                # since (another origin wrote it), the append is refused and the batch decided again.
                start = self.offset if self.offset is not None else await self.log.ensure()
            except Exception as exc:
                self._fail(batch, exc)
                return
            position, messages, outcomes = self._decide(batch, start)
            if messages:
                try:
                    await self.log.append(messages, start, position)
                except LogMoved:
                    # Another origin wrote first (postgres engine): what this batch applied was decided
                    # against a state that is not the log's. Rebuild from the log and decide again.
                    logger.info("KV database %s: another origin wrote first; deciding the batch again", self.name)
                    await self._rebuild()
                    continue
                except Exception as exc:
                    logger.exception("KV database %s: an append failed; rebuilding its state from the log", self.name)
                    await self._rebuild()
                    self._fail(batch, exc)
                    return
                finally:
                    self._dirty = False
                    self._wake(self._readers)
            self._settle_all(outcomes)
            return
        self._fail(batch, Unavailable("other origins kept writing this KV database first; retry", {RETRY_AFTER: "1"}))

    def _decide(
        self, batch: list[_Pending[object]], start: Offset
    ) -> tuple[Offset, list[bytes], list[tuple[_Pending[object], Written[object] | Exception]]]:
        """Run the batch's decisions in order, applying each event at once so the next one sees it:
        the end offset, the rendered events, and each decision's outcome (settled once durable)."""
        now = self.clock_ms()
        position = start
        messages: list[bytes] = []
        outcomes: list[tuple[_Pending[object], Written[object] | Exception]] = []
        for pending in batch:
            try:
                draft, value = pending.decide(now)
            except Exception as exc:
                outcomes.append((pending, exc))
                continue
            if not draft:
                outcomes.append((pending, Written(None, value)))
                continue
            self._dirty = True
            event, message = render(position, now, draft)
            self._apply(event)
            position = event.offset
            messages.append(message)
            outcomes.append((pending, Written(event, value)))
        return position, messages, outcomes

    def _settle_all(self, outcomes: list[tuple[_Pending[object], Written[object] | Exception]]) -> None:
        logged = [pending for pending, outcome in outcomes if isinstance(outcome, Written) and outcome.event]
        if logged and self.on_durable is not None:
            durable = time.perf_counter()
            self.on_durable([durable - pending.started for pending in logged])
        for pending, outcome in outcomes:
            _settle(pending.answer, outcome)

    # ---- other origins (postgres engine) -------------------------------------------------------

    async def catch_up(self) -> None:
        """Apply the events other origins logged since this state was last current."""
        async with self._still:
            await self._catch_up_locked()

    async def _catch_up_locked(self) -> None:
        await self.log.refresh()
        if self.offset is not None and self.log.generation() not in (None, self.offset.generation):
            await self.load()  # a new incarnation of the change stream: start again from it
            return
        if not self.log.has_after(self.offset):
            return
        async for events in self.log.events(after=self.offset):
            for event in events:
                self._apply(event)

    async def _rebuild(self) -> None:
        try:
            await self.load()
        except Exception:
            logger.exception("KV database %s: rebuilding from the log failed", self.name)

    @staticmethod
    def _fail(batch: list[_Pending[object]], exc: Exception) -> None:
        error = exc if isinstance(exc, Unavailable) else Unavailable(f"the KV database could not be written: {exc}")
        for pending in batch:
            _settle(pending.answer, error)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()


def _settle(answer: asyncio.Future[Written[R]], outcome: Written[R] | Exception) -> None:
    if answer.done():
        return
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
