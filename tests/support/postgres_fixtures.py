"""pytest fixtures over real PostgreSQL and Patroni (tests/conftest.py offers them to every test).

Each starts its servers only when a test asks for it. Where PostgreSQL, Patroni or etcd is not
installed the test is skipped, except in CI (CI=true), where that fails it: the install step
(scripts/install --test) must provide them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.patroni import PatroniCluster, missing_patroni
from tests.support.postgres import (
    PgServer,
    PrimaryWithStandby,
    add_sync_standby,
    fresh_database,
    missing_postgres,
    require,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session (tests take a database each: postgres_dsn)."""
    require(missing_postgres())
    with PgServer.create(name="session") as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PgServer) -> Iterator[str]:
    """The DSN of a new empty database on the session's server, dropped after the test."""
    if not postgres_server.running():  # an earlier test stopped or killed it: the next one gets it back
        postgres_server.start()
    with fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def postgres_with_standby() -> Iterator[PrimaryWithStandby]:
    """A primary with a synchronous standby, for the whole session (fresh_database(.primary) per test)."""
    require(missing_postgres())
    with PgServer.create(name="primary") as primary, add_sync_standby(primary) as standby:
        yield PrimaryWithStandby(primary, standby)


@pytest.fixture
def patroni_cluster() -> Iterator[PatroniCluster]:
    """A healthy three-node Patroni cluster (ttl 8 s) of the test's own: failover tests kill its nodes."""
    require(missing_patroni())
    with PatroniCluster() as cluster:
        yield cluster
