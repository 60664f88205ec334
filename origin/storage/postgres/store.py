"""PostgresStore: stream incarnations in PostgreSQL, shared by every origin on the database.

Besides the Store interface (which the storage contract suite holds it to), it offers what
several origins serving the same streams need: the lookups of StreamLookups, the conditional
append, whose decisions the database accepts only if they were made against its current record
count, and removals and expiries decided by the database.

Every append is one statement, hence one transaction and one round trip (ds_append). Its wait is
never cancelled: no statement timeout, and the committer awaits it in its own task, so a client
that disconnects cannot cut a synchronous-commit wait short (a cancelled wait leaves a commit the
standby may not have, which a failover would then lose after a reader saw it). Reads may time out.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from plugin_streams.origin.storage.base import (
    LoadedStream,
    PathTaken,
    Record,
    RecordsDropped,
    StorageFailure,
    StreamConfig,
    StreamMissing,
)
from plugin_streams.origin.storage.postgres.lookups import StreamLookups
from plugin_streams.origin.storage.postgres.rows import Batch, config_columns
from plugin_streams.shared.aio.tasks import spawn

logger = logging.getLogger(__name__)

#: Seconds a sliding-TTL access waits to be written, so that a burst of reads is one UPDATE.
ACCESS_FLUSH_DELAY: Final = 0.01


class AppendStatus(enum.IntEnum):
    APPENDED = 0
    CONFLICT = 1  # another origin appended first: decide again against the new records
    MISSING = 2
    NOT_LIVE = 3  # soft-deleted or detached


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    status: AppendStatus
    next_record: int | None


class PostgresStore(StreamLookups):
    shared = True  # several origins may write the same streams: decisions are checked here

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 16,
        read_timeout: float | None = None,
        pool_factory: Callable[..., Awaitable[asyncpg.Pool]] = asyncpg.create_pool,
    ) -> None:
        super().__init__(url, pool_size=pool_size, pool_factory=pool_factory)
        self._read_timeout = read_timeout
        self._access: dict[int, int] = {}
        self._bytes = 0  # stored payload bytes, as this process last counted them
        self._flushing: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """Connect, bring the schema up to date, count the stored bytes."""
        await self.connect()
        await self._count_bytes()

    async def _count_bytes(self) -> None:
        async with self.connection() as connection:
            self._bytes = int(await connection.fetchval("SELECT coalesce(sum(stored_bytes), 0) FROM ds_stream"))

    # -- the Store interface ----------------------------------------------------------------

    async def open(self) -> list[LoadedStream]:
        """Every stream, loaded (the Store contract); origins load lazily with `load` instead."""
        await self.prepare()
        async with self.connection() as connection:
            generations = await connection.fetch("SELECT gen FROM ds_stream ORDER BY gen")
        loaded = [await self.load(row["gen"]) for row in generations]
        return [item for item in loaded if item is not None]

    async def allocate_generation(self) -> int:
        async with self.connection() as connection:
            return int(await connection.fetchval("SELECT nextval('ds_generation')"))

    async def create(self, config: StreamConfig, records: Sequence[Record]) -> None:
        """Raises PathTaken when another incarnation holds the path (another origin created it)."""
        state, fields, fork_source, expires, ttl = config_columns(config)
        batch = Batch.of(records)
        try:
            async with self.connection() as connection, connection.transaction():
                await connection.execute(
                    "INSERT INTO ds_stream (gen, path, state, config, fork_source, expires_at_ms, ttl_ms,"
                    " created_ms, last_access_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                    config.generation,
                    config.path,
                    state,
                    fields,
                    fork_source,
                    expires,
                    ttl,
                    config.created_ms,
                )
                if records:
                    await connection.fetchrow(
                        "SELECT * FROM ds_append($1, 0, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        config.generation,
                        *batch.arguments(),
                    )
        except StorageFailure as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                raise PathTaken(config.path) from exc
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):  # the fork's source went
                raise StreamMissing(str(config.fork.source_generation if config.fork else 0)) from exc
            raise
        self._bytes += len(batch.data)

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        outcome = await self.append_if(generation, records, None)
        if outcome.status is not AppendStatus.APPENDED:
            raise StreamMissing(str(generation))

    async def append_if(self, generation: int, records: Sequence[Record], expected: int | None) -> AppendOutcome:
        """Append `records` if the stream still has exactly `expected` records and is live."""
        batch = Batch.of(records)
        async with self.connection() as connection:
            row = await connection.fetchrow(
                "SELECT * FROM ds_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                generation,
                expected,
                *batch.arguments(),
            )
        assert row is not None  # a function call returns its one row
        status = AppendStatus(row["status"])
        if status is AppendStatus.APPENDED:
            self._bytes += len(batch.data)
        return AppendOutcome(status, row["next_rec"])

    async def read(self, generation: int, first: int, last: int) -> bytes:
        if last <= first:
            await self.row(generation, require=True)
            return b""
        async with self.connection() as connection:
            # One round trip: the stream's first kept record (for RecordsDropped) with the batches.
            rows = await connection.fetch(
                "SELECT s.first_rec AS kept_from, c.first_rec, c.rec_lens, c.data FROM ds_stream s"
                " LEFT JOIN LATERAL (SELECT first_rec, rec_lens, data FROM ds_chunk WHERE gen = $1"
                " AND first_rec < $3 AND first_rec >= coalesce((SELECT max(first_rec) FROM ds_chunk"
                " WHERE gen = $1 AND first_rec <= $2), 0) ORDER BY first_rec) c ON true WHERE s.gen = $1",
                generation,
                first,
                last,
                timeout=self._read_timeout,
            )
        if not rows:
            raise StreamMissing(str(generation))
        if first < rows[0]["kept_from"]:
            raise RecordsDropped(f"records of stream {generation} were dropped by retention")
        return _slice([row for row in rows if row["first_rec"] is not None], first, last)

    async def drop_before(self, generation: int, record: int, position: int) -> None:
        async with self.connection() as connection, connection.transaction():
            updated = await connection.fetchval(
                "UPDATE ds_stream SET first_rec = $2, first_pos = $3 WHERE gen = $1 AND first_rec < $2 RETURNING gen",
                generation,
                record,
                position,
            )
            if updated is None:
                if await connection.fetchval("SELECT gen FROM ds_stream WHERE gen = $1", generation) is None:
                    raise StreamMissing(str(generation))
                return
            freed = await connection.fetchval(
                "WITH gone AS (DELETE FROM ds_chunk WHERE gen = $1 AND first_rec + cardinality(rec_lens) <= $2"
                " RETURNING octet_length(data) AS size) SELECT coalesce(sum(size), 0) FROM gone",
                generation,
                record,
            )
            await connection.execute(
                "UPDATE ds_stream SET stored_bytes = stored_bytes - $2 WHERE gen = $1", generation, freed
            )
        self._bytes -= int(freed)

    async def replace_config(self, config: StreamConfig) -> None:
        state, fields, fork_source, expires, ttl = config_columns(config)
        async with self.connection() as connection:
            updated = await connection.fetchval(
                "UPDATE ds_stream SET state = CASE WHEN state = 'detached' THEN state ELSE $2 END, config = $3,"
                " fork_source = $4, expires_at_ms = $5, ttl_ms = $6 WHERE gen = $1 RETURNING gen",
                config.generation,
                state,
                fields,
                fork_source,
                expires,
                ttl,
            )
        if updated is None:
            raise StreamMissing(str(config.generation))

    async def remove(self, generation: int) -> None:
        async with self.connection() as connection:
            freed = await connection.fetchval("DELETE FROM ds_stream WHERE gen = $1 RETURNING stored_bytes", generation)
        self._access.pop(generation, None)
        if freed is not None:
            self._bytes -= int(freed)

    def disk_bytes(self) -> int:
        return self._bytes

    def touch(self, generation: int, at_ms: int, *, soon: bool = False) -> None:
        """Note an access; `soon`: the stream has a sliding TTL that another origin may be about
        to judge, so the access is written within milliseconds rather than at the next sweep."""
        self._access[generation] = at_ms
        if soon and (self._flushing is None or self._flushing.done()):
            self._flushing = spawn(self._flush_soon(), name="flush-access-times")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(ACCESS_FLUSH_DELAY)  # touches arriving meanwhile go in the same UPDATE
        try:
            await self.flush_access_times()
        except StorageFailure as exc:
            logger.warning("could not record access times: %s", exc)

    async def flush_access_times(self) -> None:
        if not self._access:
            return
        noted, self._access = self._access, {}
        try:
            async with self.connection() as connection:
                await connection.execute(
                    "UPDATE ds_stream s SET last_access_ms = greatest(s.last_access_ms, u.at)"
                    " FROM unnest($1::bigint[], $2::bigint[]) AS u(gen, at) WHERE s.gen = u.gen",
                    list(noted),
                    list(noted.values()),
                )
        except StorageFailure:
            for generation, at in noted.items():  # kept for the next flush
                self._access[generation] = max(at, self._access.get(generation, 0))
            raise

    async def refresh_disk_bytes(self) -> None:
        """Count the stored bytes again (other origins' appends and removals change them too)."""
        await self._count_bytes()

    async def close(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            await self._flushing
        await self.disconnect()

    # -- removals decided by the database (several origins) ---------------------------------

    async def remove_unreferenced(self, generation: int) -> bool:
        """Remove the incarnation unless a fork reads its data; True if it is gone."""
        try:
            await self.remove(generation)
        except StorageFailure as exc:
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                return False
            raise
        return True

    async def release_source(self, generation: int) -> tuple[bool, int | None]:
        """Remove a deleted or expired incarnation no fork reads any more: (whether it went, the
        generation of its own source, next in the cascade)."""
        try:
            async with self.connection() as connection:
                row = await connection.fetchrow(
                    "DELETE FROM ds_stream WHERE gen = $1 AND state <> 'live' RETURNING stored_bytes, fork_source",
                    generation,
                )
        except StorageFailure as exc:
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                return False, None
            raise
        if row is None:
            return False, None
        self._access.pop(generation, None)
        self._bytes -= int(row["stored_bytes"])
        return True, row["fork_source"]

    async def expire_if_due(self, generation: int, now_ms: int) -> bool:
        """Expire the incarnation if its time is up by the database's row (a sliding TTL renewed
        through another origin is not); True if it expired. Its data goes, or, if forks read it,
        stays with the path freed."""
        async with self.connection() as connection:
            due = await connection.fetchval(
                "UPDATE ds_stream SET state = 'detached' WHERE gen = $1 AND state <> 'detached'"
                " AND (expires_at_ms <= $2 OR last_access_ms + ttl_ms <= $2) RETURNING gen",
                generation,
                now_ms,
            )
        if due is None:
            return False
        await self.remove_unreferenced(generation)
        return True


def _slice(chunks: Sequence[Any], first: int, last: int) -> bytes:
    """Payloads of records [first, last) from the batches holding them."""
    parts: list[bytes] = []
    for chunk in chunks:
        number = chunk["first_rec"]
        lens = chunk["rec_lens"]
        lo = max(first - number, 0)
        hi = min(last - number, len(lens))
        if lo >= hi:
            continue
        start = sum(lens[:lo])
        end = start + sum(lens[lo:hi])
        data = chunk["data"]
        parts.append(data if start == 0 and end == len(data) else data[start:end])
    return parts[0] if len(parts) == 1 else b"".join(parts)
