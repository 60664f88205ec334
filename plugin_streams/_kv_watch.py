"""`kv.watch(...)`: a database's committed changes under some key prefixes, from any offset, live.

A database's change stream (`__kv/{db}`, a Durable Streams JSON stream) holds one message per
commit, in commit order, and each message carries `offset`, the point just after its commit.
A watch is a tail of that stream (the client's own protocol tail: catch-up then SSE or
long-poll, reconnects that resume exactly, backoff and `give_up_after`), filtered here by key
prefix, so a watch through an edge, a CDN or a regional replica behaves the same as one at the
origin.

Durable (the default): every matching change is delivered once, in commit order; the callback
runs inside the read, so a slow callback slows the read, never loses a change. `watch.offset`
is always an exact resume point (the offset after the last commit fully handled), and so is a
change's `offset` when its `last` is true. A watch started from such an offset continues with
the next commit: nothing repeats, nothing is missed.

Coalescing (`durable=False`, Deno's behaviour): the read never waits for the callback; changes
not yet delivered are replaced by later ones to the same key, so only the latest value of a key
is certain to be seen, and intermediate values may be skipped.

Where a watch starts: `resume_from=None` is "now" (only commits after the watch started);
`"-1"` is the whole retained history; any offset a read, write or change returned continues
after it. A database that was never written has no change stream yet (404): the watch waits for
it and then reads it from its start (every commit in it is after "now").
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from plugin_streams._backoff import Backoff
from plugin_streams._kv_http import CHANGE_STREAM_PREFIX
from plugin_streams._kv_models import KvChange
from plugin_streams._kv_wire import WireKey, key_from_wire, key_to_wire, under_any, value_from_wire
from plugin_streams.errors import NotFound, StreamsError
from plugin_streams.tail import MODES, RetryHook, TailHandle

if TYPE_CHECKING:
    from plugin_streams._kv_http import KvConnection
    from plugin_streams.models import Message

ChangeCallback = Callable[[KvChange], Awaitable[None] | None]
NOW: Final = "now"
#: Answers to an SSE request that say this server (or a proxy) does not do SSE: use long-poll.
_NO_SSE_STATUSES: Final = frozenset({400, 405, 406, 501})
#: Tasks of running watches (the loop keeps only weak references to tasks).
_RUNNING: set[asyncio.Task[None]] = set()


def commit_changes(record: dict[str, Any], prefixes: Sequence[WireKey]) -> list[KvChange]:
    """The changes of one change-stream message under one of `prefixes`, the last one marked."""
    matched = [c for c in record.get("changes") or () if under_any(c["key"], prefixes)]
    offset, versionstamp, at = str(record["offset"]), str(record["versionstamp"]), record.get("at")
    return [
        KvChange(
            key=key_from_wire(change["key"]),
            op="set" if change["op"] == "set" else "delete",
            value=value_from_wire(change.get("value")) if change["op"] == "set" else None,
            versionstamp=versionstamp,
            offset=offset,
            last=index == len(matched) - 1,
            at=at,
            expire_at=change.get("expireAt"),
            cause=change.get("cause"),
        )
        for index, change in enumerate(matched)
    ]


def is_after(offset: str, other: str | None) -> bool:
    """Whether change-stream offset `offset` is after `other` (True when they cannot be compared).

    The server's offsets are fixed-width (`%016d_%016d`), so their string order is their order.
    """
    if other is None or len(offset) != len(other) or "_" not in other:
        return True
    return offset > other


class Coalescer:
    """Changes waiting for a slow callback, at most one per key: the latest replaces the older.

    Waiting changes stay in commit order (a replaced one moves to the back with its new
    offset), so the offsets delivered never go down and a change is `last` when no other
    waiting change shares its commit.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, KvChange] = {}
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, changes: Sequence[KvChange]) -> None:
        for change in changes:
            identity = json.dumps(key_to_wire(change.key))  # ("n", 1) and ("n", 1.0) stay apart
            self._waiting.pop(identity, None)
            self._waiting[identity] = change
        if self._waiting:
            self._arrived.set()

    def take(self) -> KvChange | None:
        """The oldest waiting change, or None."""
        if not self._waiting:
            return None
        change = self._waiting.pop(next(iter(self._waiting)))
        following = next(iter(self._waiting.values()), None)
        return replace(change, last=following is None or following.offset != change.offset)

    async def next(self) -> KvChange:
        while True:
            change = self.take()
            if change is not None:
                return change
            self._arrived.clear()
            await self._arrived.wait()


class KvWatch:
    """A running watch: `stop()` it, `await` it (or its `done` task) for its end or its error."""

    def __init__(
        self,
        connection: KvConnection,
        db: str,
        prefixes: Sequence[WireKey],
        callback: ChangeCallback,
        *,
        durable: bool,
        resume_from: str | None,
        mode: str,
        idle_timeout: float,
        on_retry: RetryHook | None,
        give_up_after: float | None,
    ) -> None:
        if mode not in MODES:
            raise ValueError("mode must be 'sse' or 'long-poll'")
        #: The exact resume point: the change-stream offset after the last commit fully handled.
        self.offset: str | None = resume_from
        self.delivered = 0  # changes handed to the callback
        self._read_offset = resume_from  # the offset after the last message read
        self._connection = connection
        self._stream = CHANGE_STREAM_PREFIX + db
        self._prefixes = list(prefixes)
        self._callback = callback
        self._coalescer = None if durable else Coalescer()
        self._mode = mode
        self._idle_timeout = idle_timeout
        self._on_retry = on_retry
        self._give_up_after = give_up_after
        self._stopped = asyncio.Event()
        self._tail: TailHandle | None = None
        self._in_callback = False
        self.done: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run(), name=f"kv watch {db}")
        _RUNNING.add(self.done)
        self.done.add_done_callback(_RUNNING.discard)

    def stop(self) -> None:
        """Stop after the change being delivered (if any); the watch then ends normally."""
        self._stopped.set()
        if self._tail is not None:
            self._tail.stop()

    def __await__(self) -> Generator[Any, None, None]:
        return self.done.__await__()

    async def _run(self) -> None:
        if self._coalescer is None:
            await self._follow()
            return
        deliverer = asyncio.get_running_loop().create_task(self._deliver_coalesced(self._coalescer))
        follower = asyncio.get_running_loop().create_task(self._follow())
        try:
            finished, _ = await asyncio.wait((deliverer, follower), return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                task.result()  # a callback's error or the read's ends the watch with it
            if self._stopped.is_set() and self._in_callback:
                await deliverer  # stop(): the change being delivered is finished first
        finally:
            for task in (deliverer, follower):
                task.cancel()
            await asyncio.gather(deliverer, follower, return_exceptions=True)

    async def _follow(self) -> None:
        """Tail the change stream until stop() or its closure, waiting for it while it does not exist."""
        backoff = Backoff()
        start = self._read_offset
        while not self._stopped.is_set():
            self._tail = TailHandle(
                self._connection.changes,
                self._stream,
                start,
                self._on_message,
                mode=self._mode,
                idle_timeout=self._idle_timeout,
                on_retry=self._on_retry,
                give_up_after=self._give_up_after,
            )
            if self._stopped.is_set():
                self._tail.stop()
            try:
                await self._tail.done
                return
            except asyncio.CancelledError:
                self._tail.done.cancel()  # the watch's task was cancelled: so is its read
                raise
            except NotFound:
                # No commit yet: everything the database will hold is after "now".
                start = None if self._read_offset in (None, NOW) else self._read_offset
            except StreamsError as exc:
                if self._mode != "sse" or exc.status not in _NO_SSE_STATUSES:
                    raise
                self._mode = "long-poll"
                start = self._read_offset
                continue
            await self._pause(backoff.next())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def _on_message(self, message: Message) -> None:
        record = message.data
        if not isinstance(record, dict) or not isinstance(record.get("offset"), str):
            raise StreamsError(f"{self._stream} holds a message that is not a KV commit record")
        offset: str = record["offset"]
        if not is_after(offset, self._read_offset if self._read_offset != NOW else None):
            return  # already handled (a resume point that falls inside what the server re-sent)
        changes = commit_changes(record, self._prefixes)
        if self._coalescer is not None:
            self._coalescer.add(changes)
            self._read_offset = offset
            if not len(self._coalescer):
                self.offset = offset
            return
        for change in changes:
            await self._deliver(change)
        self._read_offset = self.offset = offset

    async def _deliver(self, change: KvChange) -> None:
        self._in_callback = True
        try:
            result = self._callback(change)
            if inspect.isawaitable(result):
                await result
        finally:
            self._in_callback = False
        self.delivered += 1

    async def _deliver_coalesced(self, coalescer: Coalescer) -> None:
        while not self._stopped.is_set():
            change = await coalescer.next()
            await self._deliver(change)
            if change.last:
                self.offset = change.offset if len(coalescer) else self._read_offset
