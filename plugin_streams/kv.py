"""The KV store of a plugin-streams server: Deno KV's model, with a watch that resumes exactly.

    kv = Streams("http://127.0.0.1:4437").kv("app")
    await kv.set(("users", "alice"), {"name": "Alice"})
    entry = await kv.get(("users", "alice"))             # KvEntry(key, value, versionstamp, offset)
    async for entry in kv.list(prefix=("users",)):
        ...
    result = await kv.atomic().check(entry.key, entry.versionstamp).set(entry.key, {...}).commit()
    watch = kv.watch([("users",)], on_change, resume_from=saved_offset)
    listener = kv.listen_queue(handle_message, group="mailer")

Keys are tuples of str, bytes, int, float and bool, ordered as in Deno (bytes < str < int <
float < False < True; an `int` is Deno's bigint, a `float` its number: `1` and `1.0` are
different keys). Values are JSON, bytes or `KvU64`. Durations are milliseconds, as in Deno.
Every write answers with its commit's `versionstamp` and `offset` (the change-stream position
just after it); a watch from any such offset continues exactly after that commit.

The database exists once written; reading one that never was answers empty results.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Final

from plugin_streams._kv_atomic import AtomicOperation, enqueue_wire
from plugin_streams._kv_http import KvConnection
from plugin_streams._kv_models import CommitResult, GroupStats, KvEntry
from plugin_streams._kv_watch import ChangeCallback, KvWatch
from plugin_streams._kv_wire import KeyPart, KvValue, key_to_wire, value_to_wire
from plugin_streams.queue import DEFAULT_GROUP, DEFAULT_LEASE_MS, Queue, queue_stats
from plugin_streams.queue_listener import DEFAULT_WAIT_MS, Handler, QueueListener
from plugin_streams.tail import RetryHook

DB_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: The server's largest list page.
MAX_PAGE: Final = 1000


def _key_param(key: Sequence[KeyPart]) -> str:
    return json.dumps(key_to_wire(key), separators=(",", ":"))


class Kv:
    """One database. Made by `Streams.kv(db)`; it shares the client's connections and lifetime."""

    def __init__(self, connection: KvConnection, db: str) -> None:
        if not DB_NAME.fullmatch(db):
            raise ValueError(f"a database name matches [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}, not {db!r}")
        self.db = db
        self._connection = connection

    def __repr__(self) -> str:
        return f"Kv({self.db!r})"

    # -- reads --------------------------------------------------------------------------------

    async def get(self, key: Sequence[KeyPart]) -> KvEntry:
        """`key`'s entry (value and versionstamp None if it has none) and the offset it reflects."""
        _, answer = await self._connection.call("GET", self.db, "/keys", params={"key": _key_param(key)})
        return KvEntry.from_wire(answer, answer.get("offset"))

    async def get_many(self, keys: Iterable[Sequence[KeyPart]]) -> list[KvEntry]:
        """The entries of up to 10 keys, read at one point of the database's history."""
        body = {"keys": [key_to_wire(key) for key in keys]}
        _, answer = await self._connection.call("POST", self.db, "/get-many", body=body)
        offset = answer.get("offset")
        return [KvEntry.from_wire(entry, offset) for entry in answer.get("entries") or ()]

    async def list(
        self,
        prefix: Sequence[KeyPart] | None = None,
        *,
        start: Sequence[KeyPart] | None = None,
        end: Sequence[KeyPart] | None = None,
        limit: int | None = None,
        reverse: bool = False,
        batch_size: int = 100,
    ) -> AsyncIterator[KvEntry]:
        """Entries in key order (reversed with `reverse`), paging with the server's cursor.

        Selectors as in Deno: keys under `prefix` (the prefix itself excluded), optionally from
        `start` or up to `end` (exclusive) within it; or `start` (inclusive) to `end`
        (exclusive) without a prefix; nothing: every key. `limit` caps the total; `batch_size` (1..1000) is the page.
        """
        if not 1 <= batch_size <= MAX_PAGE:
            raise ValueError(f"batch_size is 1..{MAX_PAGE}")
        if prefix is None and start is None and end is None:
            prefix = ()  # the empty prefix: every key
        params = {"reverse": "true" if reverse else "false"}
        for name, key in (("prefix", prefix), ("start", start), ("end", end)):
            if key is not None:
                params[name] = _key_param(key)
        remaining = limit
        while remaining is None or remaining > 0:
            page = batch_size if remaining is None else min(batch_size, remaining)
            _, answer = await self._connection.call("GET", self.db, "/list", params={**params, "limit": str(page)})
            entries = answer.get("entries") or ()
            for wire in entries:
                yield KvEntry.from_wire(wire, answer.get("offset"))
            if remaining is not None:
                remaining -= len(entries)
            cursor = answer.get("cursor")
            if cursor is None or not entries:
                return
            params["cursor"] = str(cursor)

    # -- writes -------------------------------------------------------------------------------

    async def set(self, key: Sequence[KeyPart], value: KvValue, *, expire_in_ms: float | None = None) -> CommitResult:
        """Store `value` at `key` (expiring after `expire_in_ms` milliseconds if given)."""
        params = {"key": _key_param(key)}
        if expire_in_ms is not None:
            if not expire_in_ms >= 0:
                raise ValueError("expire_in_ms is a number of milliseconds >= 0")
            params["expireIn"] = str(round(expire_in_ms))
        _, answer = await self._connection.call("PUT", self.db, "/keys", params=params, body=value_to_wire(value))
        return CommitResult.from_wire(answer)

    async def delete(self, key: Sequence[KeyPart]) -> CommitResult:
        _, answer = await self._connection.call("DELETE", self.db, "/keys", params={"key": _key_param(key)})
        return CommitResult.from_wire(answer)

    def atomic(self) -> AtomicOperation:
        """A new atomic operation on this database (see `AtomicOperation`)."""
        return AtomicOperation(self._commit)

    async def _commit(self, body: dict[str, Any]) -> CommitResult:
        status, answer = await self._connection.call(
            "POST", self.db, "/atomic", body=body, idempotent=False, check_may_fail=True
        )
        return CommitResult(ok=False) if status == 409 else CommitResult.from_wire(answer)

    # -- watch --------------------------------------------------------------------------------

    def watch(
        self,
        prefixes: Iterable[Sequence[KeyPart]],
        callback: ChangeCallback,
        *,
        durable: bool = True,
        resume_from: str | None = None,
        mode: str = "sse",
        idle_timeout: float = 45.0,
        on_retry: RetryHook | None = None,
        give_up_after: float | None = None,
    ) -> KvWatch:
        """Call `callback(change)` for each committed change to a key under one of `prefixes`.

        The empty prefix `()` matches every key. `resume_from`: None ("now"), "-1" (all retained
        history) or an offset from a change, a read or a write. Durable (default): every change
        exactly once in commit order; `durable=False`: Deno's coalescing (latest value per key).
        `mode`: "sse" (falls back to "long-poll" where SSE is refused) or "long-poll". A
        callback error ends the watch and is raised by awaiting it. See `plugin_streams._kv_watch`.
        """
        return KvWatch(
            self._connection,
            self.db,
            [key_to_wire(prefix) for prefix in prefixes],
            callback,
            durable=durable,
            resume_from=resume_from,
            mode=mode,
            idle_timeout=idle_timeout,
            on_retry=on_retry,
            give_up_after=give_up_after,
        )

    # -- queue --------------------------------------------------------------------------------

    async def enqueue(
        self,
        value: KvValue,
        *,
        delay: float | None = None,
        backoff_schedule: Iterable[float] | None = None,
        keys_if_undelivered: Iterable[Sequence[KeyPart]] | None = None,
    ) -> CommitResult:
        """Put `value` in the database's queue; `enqueued` holds its id.

        `delay` (ms): not delivered before then. `backoff_schedule` (ms): the waits between
        attempts (its length + 1 is the number of attempts; Deno's default when None).
        `keys_if_undelivered`: keys that receive the value if it is dead-lettered.
        """
        body = enqueue_wire(value, delay, backoff_schedule, keys_if_undelivered)
        _, answer = await self._connection.call("POST", self.db, "/queue/enqueue", body=body, idempotent=False)
        result = CommitResult.from_wire(answer)
        message_id = answer.get("id")
        return CommitResult(result.ok, result.versionstamp, result.offset, (str(message_id),)) if message_id else result

    def queue(self, group: str = DEFAULT_GROUP) -> Queue:
        """Consumer group `group` of this database's queue: lease/ack/nack/..., stats, DLQ, replay."""
        return Queue(self._connection, self.db, group)

    async def queue_stats(self) -> dict[str, GroupStats]:
        """Every consumer group's figures (depth, in flight, redeliveries, DLQ, oldest age)."""
        return await queue_stats(self._connection, self.db)

    def listen_queue(
        self,
        handler: Handler,
        *,
        group: str = DEFAULT_GROUP,
        concurrency: int = 1,
        lease_ms: int = DEFAULT_LEASE_MS,
        wait_ms: int = DEFAULT_WAIT_MS,
        worker: str | None = None,
    ) -> QueueListener:
        """Run `handler(message)` for each message of `group`: ack on return (committing the
        `kv.atomic()` it returns with the ack), nack on an exception, dead-letter on `Term`.
        See `plugin_streams.queue_listener`."""
        return QueueListener(
            self.queue(group), handler, concurrency=concurrency, lease_ms=lease_ms, wait_ms=wait_ms, worker=worker
        )
