"""Wakeups across origins (postgres engine): one coalescing NOTIFY sender, one LISTEN connection.

An origin that commits appends to a stream, or deletes one, names it on the `ds_streams` channel;
the others catch up on that stream and wake their live readers. NOTIFY is never sent inside an
append's transaction (it takes a database-wide lock at commit and would serialise every append):
changes are collected and sent together at most every `interval` seconds, as "generation:count"
items (count -1: the stream was deleted or expired), split below PostgreSQL's 8000-byte payload.

A notification can be lost (the listener's connection drops, the database fails over): after
every (re)connect the listener catches up on every stream that has readers waiting here, so a lost
notification delays a wakeup and never loses one. The same connection holds the advisory lock
that elects the one origin running the sweeps (expiry, in origin.sweeper).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import asyncpg

from plugin_streams.origin.storage.base import StorageFailure
from plugin_streams.origin.storage.postgres.database import DATABASE_ERRORS
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import Unavailable

if TYPE_CHECKING:
    from plugin_streams.origin.shared_registry import SharedRegistry

logger = logging.getLogger(__name__)

CHANNEL: Final = "ds_streams"
#: pg_try_advisory_lock key of the sweeper election ("ds-sweep").
SWEEP_LOCK: Final = 0x64732D7377656570
MAX_PAYLOAD: Final = 7900
GONE: Final = -1
#: The "generation" that names the change feed (real generations start at 1).
FEED: Final = 0


def encode(sent_ms: int, changes: dict[int, int]) -> list[str]:
    """NOTIFY payloads naming `changes`, each below MAX_PAYLOAD bytes: "t<ms> gen:count ..."."""
    payloads: list[str] = []
    head = f"t{sent_ms}"
    current = head
    for generation, count in changes.items():
        item = f" {generation}:{count}"
        if len(current) + len(item) > MAX_PAYLOAD:
            payloads.append(current)
            current = head
        current += item
    if current != head:
        payloads.append(current)
    return payloads


def decode(payload: str) -> tuple[int, dict[int, int]]:
    """(sent_ms, {generation: count}); malformed items are skipped (the channel is ours, but a
    database user could NOTIFY anything on it)."""
    parts = payload.split(" ")
    sent = int(parts[0][1:]) if parts and parts[0][:1] == "t" and parts[0][1:].isdigit() else 0
    changes: dict[int, int] = {}
    for item in parts[1:]:
        generation, _, count = item.partition(":")
        try:
            changes[int(generation)] = int(count)
        except ValueError:
            continue
    return sent, changes


class Wakeups:
    def __init__(
        self,
        url: str,
        registry: SharedRegistry,
        store: PostgresStore,
        *,
        interval: float = 0.005,
        reconnect_delay: float = 0.5,
    ) -> None:
        self.url = url
        self.registry = registry
        self.store = store
        self.interval = interval
        self.reconnect_delay = reconnect_delay
        self.keepalive_timeout = 5.0  # seconds the LISTEN connection's keepalive query may take
        self.leader = False  # holds the sweeper lock
        self.connected = False
        self._changes: dict[int, int] = {}
        self._sending: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._catching_up: dict[int, bool] = {}  # generation -> heard again meanwhile
        self._lost = asyncio.Event()
        self.on_feed: Callable[[], None] = lambda: None  # the change feed moved (or may have)

    # -- sending ----------------------------------------------------------------------------

    def changed(self, state: StreamState, *, gone: bool = False) -> None:
        self._announce(state.generation, GONE if gone else state.record_count)

    def feed_changed(self) -> None:
        self._announce(FEED, 1)

    def _announce(self, generation: int, count: int) -> None:
        self._changes[generation] = count
        if self._sending is None or self._sending.done():
            self._sending = spawn(self._send(), name="notify")

    async def _send(self) -> None:
        # Until nothing is left: a change announced during a send's round trip goes in the next one.
        while self._changes:
            await asyncio.sleep(self.interval)
            changes, self._changes = self._changes, {}
            await self._notify(changes)

    async def _notify(self, changes: dict[int, int]) -> None:
        try:
            async with self.store.pool.acquire() as connection:
                for payload in encode(int(time.time() * 1000), changes):
                    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        except (*DATABASE_ERRORS, StorageFailure) as exc:
            # Readers elsewhere still catch up on their next lookup or listener reconnect.
            logger.warning("could not notify other origins: %s", exc)

    # -- listening --------------------------------------------------------------------------

    def start(self) -> None:
        self._listening = spawn(self._listen_forever(), name="listen")

    async def stop(self) -> None:
        for task in (self._listening, self._sending):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    async def _listen_forever(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self.url)
                self._lost.clear()
                connection.add_termination_listener(lambda _: self._lost.set())
                await connection.add_listener(CHANNEL, self._heard)
                self.connected = True
                if self.store.metrics is not None:
                    self.store.metrics.listener(True)
                self.leader = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK))
                await self._catch_up_waiting()
                self.on_feed()  # events may have been missed while disconnected
                while not self._lost.is_set():
                    try:
                        async with asyncio.timeout(1.0):
                            await self._lost.wait()
                    except TimeoutError:
                        # A query a second: a half-open connection (no FIN, no RST) would otherwise hear
                        # nothing for ever, and keep the sweeps' lock it may have lost.
                        async with asyncio.timeout(self.keepalive_timeout):
                            await connection.fetchval("SELECT 1")
                        if not self.leader:  # the leader may be gone: try to take over the sweeps
                            self.leader = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK))
            except DATABASE_ERRORS as exc:
                logger.warning("listener: %s; reconnecting", exc)
                if self.store.metrics is not None:
                    self.store.metrics.error("listener")
            finally:
                if self.store.metrics is not None:
                    self.store.metrics.listener(False)
                self.connected = False
                self.leader = False
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(self.reconnect_delay)

    async def _catch_up_waiting(self) -> None:
        """After a (re)connect: catch up on every stream with readers waiting here."""
        for state in list(self.registry.by_generation.values()):
            if state.changed is not None:
                self._catch_up(state)

    def _heard(self, connection: object, pid: int, channel: str, payload: object) -> None:
        sent, changes = decode(str(payload))
        if sent and self.store.metrics is not None:
            self.store.metrics.notified(time.time() - sent / 1000)
        for generation, count in changes.items():
            if generation == FEED:
                self.on_feed()
                continue
            state = self.registry.by_generation.get(generation)
            if state is not None and (count == GONE or count > state.record_count):
                self._catch_up(state)

    def _catch_up(self, state: StreamState) -> None:
        generation = state.generation
        if generation in self._catching_up:
            self._catching_up[generation] = True  # it may have read the row before this change
            return
        self._catching_up[generation] = False

        async def catch_up() -> None:
            try:
                while True:
                    await self.registry.catch_up(state)
                    if not self._catching_up.get(generation):
                        return
                    self._catching_up[generation] = False
            except Unavailable:
                pass  # the next lookup or reconnect catches up
            finally:
                self._catching_up.pop(generation, None)

        spawn(catch_up(), name=f"catch-up-{generation}")
