"""The postgres engine's connections: one pool per origin, errors turned into StorageFailure.

Every query goes through `connection()`: a database that went away, a failover in progress or a
connection that died mid-reply is a StorageFailure (the request answers 503, Retry-After), never
an unhandled error. The pool opens all its connections at start-up (opening one stats a few files
of ~/.postgresql, see shared.aio.loop_watch) and replaces the ones a failover broke on demand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from plugin_streams.origin.storage.base import StorageFailure
from plugin_streams.origin.storage.postgres.metrics import PostgresMetrics
from plugin_streams.origin.storage.postgres.schema import migrate

Connection = asyncpg.Connection | PoolConnectionProxy

#: Errors meaning "the database did not do it, or we cannot know": the caller answers 503.
#: InternalClientError: a pooled connection whose server died mid-reply ("another operation is in progress").
DATABASE_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    ConnectionError,
    TimeoutError,
)


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 16,
        pool_factory: Callable[..., Awaitable[asyncpg.Pool]] = asyncpg.create_pool,
    ) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool_factory = pool_factory
        self._pool: asyncpg.Pool | None = None
        self.metrics: PostgresMetrics | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageFailure("the postgres engine is not open")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        try:
            async with self.pool.acquire() as connection:
                yield connection
        except DATABASE_ERRORS as exc:
            if self.metrics is not None:
                self.metrics.error("query")
            raise StorageFailure(f"database: {exc}") from exc

    async def connect(self) -> None:
        """Open the pool and bring the schema up to date (every origin does it; the first migrates)."""
        if self._pool is None:
            try:
                self._pool = await self._pool_factory(self.url, min_size=self._pool_size, max_size=self._pool_size)
            except DATABASE_ERRORS as exc:
                if self.metrics is not None:
                    self.metrics.error("connect")
                raise StorageFailure(f"cannot reach the database: {exc}") from exc
            if self.metrics is not None:
                self.metrics.watch_pool(self._pool)
        async with self.connection() as connection:
            await migrate(connection)

    async def disconnect(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
