"""The Patroni fixture itself (tests/support/patroni.py): a real three-node cluster fails over and heals.

The failover tests of #15 rely on exactly this: a leader with a synchronous standby, writes
through the multi-host DSN, the leader's host killed, a new leader within ttl + 5 s reachable
through the same DSN with every committed row, and the dead node back as a replica.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.support.patroni import PatroniCluster
from tests.support.postgres import psql

#: What a client sees while no node takes writes: refused, read-only, cut off, or too slow.
UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def insert(dsn: str, n: int) -> int:
    """Insert row `n` through `dsn` (again, harmlessly, after an unanswered try); the port that took it."""
    connection = await asyncpg.connect(dsn, timeout=3, command_timeout=3)
    try:
        await connection.execute("INSERT INTO log VALUES ($1) ON CONFLICT DO NOTHING", n)
        port: int = await connection.fetchval("SELECT inet_server_port()")
        return port
    finally:
        await connection.close(timeout=2)


async def insert_when_writable(dsn: str, n: int, deadline: float) -> int:
    """Retry insert() until a node takes it; TimeoutError at `deadline` (time.monotonic())."""
    while True:
        try:
            return await insert(dsn, n)
        except UNAVAILABLE:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_the_leaders_host_dies_a_sync_standby_takes_over_and_the_host_rejoins(
    patroni_cluster: PatroniCluster,
) -> None:
    cluster = patroni_cluster
    roles = sorted(member["role"] for member in cluster.members().values())
    assert roles == ["leader", "replica", "sync_standby"]
    old_leader = cluster.leader()
    nodes = cluster.nodes

    psql(nodes[old_leader].pg_port, "CREATE TABLE log (n int PRIMARY KEY)")
    assert await insert(cluster.dsn, 1) == nodes[old_leader].pg_port

    killed_at = time.monotonic()
    cluster.kill_node(old_leader)
    assert not nodes[old_leader].running()
    port = await insert_when_writable(cluster.dsn, 2, killed_at + cluster.ttl + 5)
    pause = time.monotonic() - killed_at
    assert pause <= cluster.ttl + 5, f"writes resumed {pause:.1f} s after the kill"

    new_leader = await asyncio.to_thread(cluster.wait_healthy, 30)
    assert new_leader != old_leader and port == nodes[new_leader].pg_port
    assert psql(port, "SELECT string_agg(n::text, ',' ORDER BY n) FROM log") == "1,2"
    timeline = cluster.members()[new_leader]["timeline"]
    assert timeline > 1, "the promoted standby starts a new timeline"

    cluster.restart_node(old_leader)
    await asyncio.to_thread(cluster.wait_replica, old_leader, 60)
    rejoined = cluster.members()[old_leader]
    assert rejoined["role"] in ("replica", "sync_standby") and rejoined["timeline"] == timeline
    assert psql(nodes[old_leader].pg_port, "SELECT pg_is_in_recovery()") == "t"
    assert await insert(cluster.dsn, 3) == nodes[new_leader].pg_port  # the DSN still finds the leader
