"""The origin's KV databases: found by name, rebuilt from their change streams at start-up, and
swept in the background (expired keys deleted, lapsed queue leases failed).

A database exists once written: a read of a name never written finds nothing and allocates
nothing, so probing random names costs the server no memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Final

from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.database import DurableHook, KvDatabase
from plugin_streams.origin.kv.log import KV_ROOT, ChangeLog, is_kv_path
from plugin_streams.origin.service import StreamService
from plugin_streams.shared.errors import BadRequest

logger = logging.getLogger(__name__)
_NAME: Final = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
#: How often the sweeper looks for expired keys and lapsed leases.
SWEEP_INTERVAL_S: Final = 0.25


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(
            "a database name is 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


class KvDatabases:
    def __init__(self, service: StreamService, on_durable: DurableHook | None = None) -> None:
        self.service = service
        self.on_durable = on_durable  # told of every durable write batch (origin/kv/metrics.py)
        service.reserve(KV_ROOT)
        self._open: dict[str, KvDatabase] = {}
        self._loading: dict[str, asyncio.Future[KvDatabase]] = {}

    async def start(self) -> None:
        """Rebuild every database whose change stream the origin recovered."""
        for path in [path for path in self.service.registry.by_path if is_kv_path(path)]:
            await self.open(path[len(KV_ROOT) :])

    def all(self) -> list[KvDatabase]:
        return list(self._open.values())

    async def find(self, name: str) -> KvDatabase | None:
        """The database, or None if it was never written (nothing is allocated for it)."""
        check_name(name)
        if name not in self._open and ChangeLog(self.service, name).tail() is None:
            return None
        return await self.open(name)

    async def open(self, name: str) -> KvDatabase:
        """The database, loaded from its change stream on first use; one load however many ask."""
        check_name(name)
        db = self._open.get(name)
        if db is not None:
            return db
        loading = self._loading.get(name)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[KvDatabase] = asyncio.get_running_loop().create_future()
        self._loading[name] = future
        try:
            db = KvDatabase(name, ChangeLog(self.service, name), self.service.clock_ms, self.on_durable)
            await db.load()
            self._open[name] = db
            future.set_result(db)
            return db
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, and no one else need
            raise
        finally:
            del self._loading[name]

    async def sweep_forever(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for db in self.all():
                try:
                    await self.sweep(db)
                except Exception:
                    logger.exception("KV database %s: the sweep failed", db.name)

    async def sweep(self, db: KvDatabase) -> None:
        now = self.service.clock_ms()
        if db.index.expired_keys(now, 1):
            await db.write(decisions.sweep_expired(db))
        if decisions.has_expired_leases(db, now):
            await db.write(decisions.expire_leases(db))
