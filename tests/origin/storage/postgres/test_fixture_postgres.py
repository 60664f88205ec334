"""The PostgreSQL fixtures themselves (tests/support/postgres.py), on real servers.

Every PostgreSQL test of the project stands on them: a server that takes writes, a crash that
keeps what was committed and nothing else, a database per test, a standby that is really
synchronous, and the rule for a missing installation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from tests.support.postgres import (
    PgError,
    PgServer,
    PrimaryWithStandby,
    add_sync_standby,
    fresh_database,
    missing_postgres,
    process_alive,
    require,
)


@asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


def replayed(standby: PgServer, query: str, database: str) -> str | None:
    """The query's result on the standby, or None while it has not replayed what the query needs."""
    try:
        return standby.sql(query, database)
    except PgError:
        return None


async def test_a_fresh_database_takes_writes(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as db:
        assert await db.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        await db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        await db.execute("INSERT INTO notes VALUES (1, 'first')")
        assert await db.fetchval("SELECT body FROM notes WHERE id = 1") == "first"
        assert await db.fetchval("SHOW fsync") == "on"
        assert await db.fetchval("SHOW synchronous_commit") == "on"
        assert await db.fetchval("SHOW max_connections") == "200"


async def test_each_test_gets_its_own_database_and_it_is_dropped(postgres_server: PgServer) -> None:
    with fresh_database(postgres_server) as first, fresh_database(postgres_server) as second:
        assert first != second
        async with connected(first) as db:
            name = await db.fetchval("SELECT current_database()")
            await db.execute("CREATE TABLE only_here (x int)")
        async with connected(second) as db:
            assert await db.fetchval("SELECT to_regclass('only_here')") is None
    assert postgres_server.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "0"


async def test_kill_keeps_committed_rows_and_loses_the_rest() -> None:
    require(missing_postgres())
    with PgServer.create(name="crash") as server:
        async with connected(server.dsn) as db:
            await db.execute("CREATE TABLE log (n int PRIMARY KEY)")
            await db.execute("INSERT INTO log SELECT generate_series(1, 100)")
            open_transaction = db.transaction()
            await open_transaction.start()
            await db.execute("INSERT INTO log VALUES (101)")  # never committed
            old_pid = server.pid
            server.kill()
            assert not server.running() and not process_alive(old_pid)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await db.execute("SELECT 1")
        server.start()
        assert server.pid != old_pid
        async with connected(server.dsn) as db:
            assert await db.fetchval("SELECT count(*) FROM log") == 100
            assert await db.fetchval("SELECT max(n) FROM log") == 100


async def test_stop_then_start_on_the_same_data() -> None:
    require(missing_postgres())
    with PgServer.create(name="restart") as server:
        server.sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        server.stop()
        assert not server.running()
        server.start()
        assert server.sql("SELECT x FROM kept") == "7"


async def test_the_standby_is_synchronous_and_sees_the_primarys_commits(
    postgres_with_standby: PrimaryWithStandby,
) -> None:
    primary, standby = postgres_with_standby.primary, postgres_with_standby.standby
    assert primary.sql("SELECT sync_state FROM pg_stat_replication") == "sync"
    assert standby.sql("SELECT pg_is_in_recovery()") == "t"
    with fresh_database(primary) as dsn:
        database = dsn.rsplit("/", 1)[1]
        async with connected(dsn) as db:
            await db.execute("CREATE TABLE replicated (x int)")
            await db.execute("INSERT INTO replicated VALUES (42)")
        deadline = time.monotonic() + 10
        # synchronous_commit=on waits for the standby's flush; its replay follows moments later
        while replayed(standby, "SELECT x FROM replicated", database) != "42":
            assert time.monotonic() < deadline, "the standby never showed the committed row"
            await asyncio.sleep(0.05)
        async with connected(standby.dsn_for(database)) as db:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await db.execute("INSERT INTO replicated VALUES (43)")


async def test_a_commit_waits_for_the_standby() -> None:
    """With the standby gone, a commit on the primary does not return: the standby really is synchronous."""
    require(missing_postgres())
    with PgServer.create(name="primary") as primary, add_sync_standby(primary) as standby:
        primary.sql("CREATE TABLE t (x int)")
        standby.kill()
        async with connected(primary.dsn) as db:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.5):
                    await db.execute("INSERT INTO t VALUES (1)")


def test_a_missing_installation_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    require(None)  # everything installed: nothing happens
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        require("no initdb")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no initdb.*scripts/install --test"):
        require("no initdb")
