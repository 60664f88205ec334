"""SharedChangeLog: the change feed when several origins share the streams (postgres engine).

Events are written to the database's ds_change table, numbered there, so every origin serves the
same feed under the same epoch: a replica or an edge can follow any origin and move to another
without a resync. Each origin keeps a window of the feed in memory (the ChangeLog it extends) and
fills it from the table when another origin's NOTIFY says the feed moved (origin.wakeups), when
its own events are written, and after its listener reconnects; readers are served from memory.

Events are written in the order this origin published them, by one writer task, after the change
they describe is committed: the feed is a hint that saves replicas from polling; the stream list
(read from the database too) stays the truth a resync reconciles against.
"""

from __future__ import annotations

import asyncio
import json
import logging
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Final

from plugin_streams.origin.replication.changes import WINDOW, ChangeLog
from plugin_streams.origin.storage.base import StorageError
from plugin_streams.origin.storage.postgres.change_feed import ChangeFeed
from plugin_streams.shared.aio.tasks import spawn

logger = logging.getLogger(__name__)

#: Events read from the table in one query.
PAGE: Final = 1000


class SharedChangeLog(ChangeLog):
    def __init__(self, feed: ChangeFeed, window: int = WINDOW) -> None:
        super().__init__(window)
        self.feed = feed
        self.window = window
        self._floor = 0  # the seq before the oldest event in memory: older ones mean resync
        self._outbox: list[str] = []
        self._writing: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._read_again = False
        self.on_written: Callable[[], None] = lambda: None  # own events are in the table: NOTIFY

    async def start(self) -> None:
        self.epoch = await self.feed.epoch()
        self._floor, events = await self.feed.last(self.window)
        self.seq = self._floor
        self._mirror(events)

    # -- writing ----------------------------------------------------------------------------

    def _publish(self, kind: str, **fields: Any) -> None:
        self._outbox.append(json.dumps({"type": kind, **fields}, separators=(",", ":")))
        if self._writing is None or self._writing.done():
            self._writing = spawn(self._write(), name="change-feed-write")

    async def _write(self) -> None:
        while self._outbox:
            events, self._outbox = self._outbox, []
            try:
                await self.feed.add(events)
            except StorageError as exc:
                logger.warning("could not record %d change feed events: %s", len(events), exc)
                continue  # replicas resync against the stream list sooner or later
            self.on_written()
            self.refresh()

    # -- reading ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read events the table has and memory has not (another origin's NOTIFY, own writes)."""
        if self._reading is not None and not self._reading.done():
            self._read_again = True
            return
        self._reading = spawn(self._read(), name="change-feed-read")

    async def _read(self) -> None:
        while True:
            self._read_again = False
            try:
                events = await self.feed.after(self.seq, PAGE)
            except StorageError as exc:
                logger.warning("could not read the change feed: %s", exc)
                return
            self._mirror(events)
            if len(events) < PAGE and not self._read_again:
                return

    def _mirror(self, events: list[tuple[int, str]]) -> None:
        for seq, event in events:
            line = json.dumps({"seq": seq, **json.loads(event)}, separators=(",", ":")).encode() + b"\n"
            self._events.append((seq, line))
            self.seq = seq
        if len(self._events) == self._events.maxlen:
            self._floor = max(self._floor, self._events[0][0] - 1)  # the window moved on
        if events and self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
            self._changed = None

    def since(self, epoch: str | None, after: int) -> list[bytes] | None:
        """As ChangeLog.since; the database's numbers may have gaps (a rolled-back insert)."""
        if epoch != self.epoch or after > self.seq or after < self._floor:
            return None
        events = list(self._events)
        start = bisect_right([seq for seq, _ in events], after)
        return [line for _, line in events[start:]]
