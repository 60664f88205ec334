"""ChangeFeed: the change feed's table (ds_change), written and read by every origin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from plugin_streams.origin.storage.postgres.database import Database

#: pg_advisory_xact_lock key of the change feed's writers ("ds-feed").
FEED_LOCK: Final = 0x64732D66656564


class ChangeFeed:
    """The database's change feed: events appended by any origin, read back in order."""

    def __init__(self, store: Database) -> None:
        self.store = store

    async def epoch(self) -> str:
        async with self.store.connection() as connection:
            return str(await connection.fetchval("SELECT value FROM ds_meta WHERE key = 'feed_epoch'"))

    async def add(self, events: Sequence[str]) -> None:
        """Append events; numbers are taken under a lock, so they follow commit order (a reader
        that saw event N+1 never misses an N committed after it)."""
        async with self.store.connection() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", FEED_LOCK)
            await connection.executemany("INSERT INTO ds_change (event) VALUES ($1)", [(e,) for e in events])

    async def after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        """Events after `seq` (at most `limit`, the oldest first)."""
        async with self.store.connection() as connection:
            rows = await connection.fetch(
                "SELECT seq, event::text AS event FROM ds_change WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit
            )
        return [(row["seq"], row["event"]) for row in rows]

    async def last(self, count: int) -> tuple[int, list[tuple[int, str]]]:
        """(the seq before the `count` newest events, those events)."""
        async with self.store.connection() as connection:
            newest = int(await connection.fetchval("SELECT coalesce(max(seq), 0) FROM ds_change"))
        floor = max(0, newest - count)
        return floor, await self.after(floor, count)

    async def trim(self, keep: int) -> None:
        async with self.store.connection() as connection:
            await connection.execute("DELETE FROM ds_change WHERE seq <= (SELECT max(seq) FROM ds_change) - $1", keep)
