"""StreamLookups: what several origins serving the same streams read of them in the database.

The current row of a path or a generation (every origin agrees on it: it is the database's),
the records another origin appended since a given one (with the row they end, read together),
one stream loaded as recovery would have loaded it, and listings (expired streams, paths).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, TypeVar

from plugin_streams.origin.storage.base import LoadedStream, StreamMissing
from plugin_streams.origin.storage.postgres.database import Database
from plugin_streams.origin.storage.postgres.rows import (
    STREAM_COLUMNS,
    RecordMeta,
    StreamRow,
    record_metas,
    summary_of,
)
from plugin_streams.shared.producer import MAX_PRODUCERS_PER_STREAM

#: Batch rows decoded on the event loop at most; a stream with more (a first lookup of a long
#: stream, a catch-up after a long disconnection) is decoded in a thread, so other requests go on.
DECODE_ON_LOOP: Final = 256
T = TypeVar("T")

_CHUNK_COLUMNS: Final = "first_rec, rec_lens, rec_times, producer_ids, producer_epochs, producer_seqs"


class StreamLookups(Database):
    async def lookup(self, path: str) -> StreamRow | None:
        """The incarnation holding `path` now (live or soft-deleted), or None."""
        async with self.connection() as connection:
            row = await connection.fetchrow(
                f"SELECT {STREAM_COLUMNS} FROM ds_stream WHERE path = $1 AND state <> 'detached'", path
            )
        return None if row is None else StreamRow.decode(row)

    async def row(self, generation: int, *, require: bool = False) -> StreamRow | None:
        async with self.connection() as connection:
            row = await connection.fetchrow(f"SELECT {STREAM_COLUMNS} FROM ds_stream WHERE gen = $1", generation)
        if row is None and require:
            raise StreamMissing(str(generation))
        return None if row is None else StreamRow.decode(row)

    async def records_since(self, generation: int, first: int) -> tuple[StreamRow | None, list[RecordMeta]]:
        """The stream's row and the records numbered `first` and above that are still kept (sizes,
        accept times, producers), read together: the row describes exactly the log they end."""
        async with self.connection() as connection, connection.transaction(isolation="repeatable_read"):
            raw = await connection.fetchrow(f"SELECT {STREAM_COLUMNS} FROM ds_stream WHERE gen = $1", generation)
            if raw is None:
                return None, []
            row = StreamRow.decode(raw)
            first = max(first, row.first_record)  # records before it were dropped by retention
            if row.next_record <= first:
                return row, []
            chunks = await connection.fetch(
                f"SELECT {_CHUNK_COLUMNS} FROM ds_chunk WHERE gen = $1 AND first_rec >= coalesce("
                "(SELECT max(first_rec) FROM ds_chunk WHERE gen = $1 AND first_rec <= $2), 0) ORDER BY first_rec",
                generation,
                first,
            )
        return row, await _off_the_loop_if_big(len(chunks), record_metas, chunks, first)

    async def load(self, generation: int) -> LoadedStream | None:
        """One stream as recovery would have loaded it, or None if it is gone."""
        async with self.connection() as connection, connection.transaction(isolation="repeatable_read"):
            raw = await connection.fetchrow(f"SELECT {STREAM_COLUMNS} FROM ds_stream WHERE gen = $1", generation)
            if raw is None:
                return None
            row = StreamRow.decode(raw)
            chunks = await connection.fetch(
                f"SELECT {_CHUNK_COLUMNS} FROM ds_chunk WHERE gen = $1 ORDER BY first_rec", generation
            )
            producers = await connection.fetch(
                "SELECT producer_id, epoch, last_seq FROM (SELECT * FROM ds_producer WHERE gen = $1"
                " ORDER BY last_rec DESC LIMIT $2) recent ORDER BY last_rec",
                generation,
                MAX_PRODUCERS_PER_STREAM,
            )
        summary = await _off_the_loop_if_big(
            len(chunks), lambda: summary_of(row, record_metas(chunks, row.first_record), producers)
        )
        return LoadedStream(row.config(), summary, row.last_access_ms, row.first_record, row.first_position)

    async def expired(self, now_ms: int, limit: int = 1000) -> list[str]:
        """Paths whose incarnation's time is up (absolute expiry, or a sliding TTL not renewed)."""
        async with self.connection() as connection:
            rows = await connection.fetch(
                "SELECT path FROM ds_stream WHERE state <> 'detached' AND (expires_at_ms <= $1"
                " OR (ttl_ms IS NOT NULL AND last_access_ms + ttl_ms <= $1)) LIMIT $2",
                now_ms,
                limit,
            )
        return [row["path"] for row in rows]

    async def paths_from(self, start: str, limit: int, *, after: bool = False) -> list[str]:
        """Paths held by an incarnation, in order, from `start` (included, or not: `after`): listings."""
        comparison = ">" if after else ">="
        async with self.connection() as connection:
            rows = await connection.fetch(
                f"SELECT path FROM ds_stream WHERE state <> 'detached' AND path {comparison} $1 ORDER BY path LIMIT $2",
                start,
                limit,
            )
        return [row["path"] for row in rows]


async def _off_the_loop_if_big(rows: int, decode: Callable[..., T], *args: Any) -> T:
    if rows > DECODE_ON_LOOP:
        return await asyncio.to_thread(decode, *args)
    return decode(*args)
