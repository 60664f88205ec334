"""Shared fixtures: data directories, real origin processes, the in-process origin (memory_client), PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin_streams.shared.aio.loop_watch import ENV, loop_watch
from tests.support.memory_origin import memory_client  # noqa: F401  (a fixture for every test)
from tests.support.postgres_fixtures import (  # noqa: F401  (real PostgreSQL and Patroni, started lazily)
    patroni_cluster,
    postgres_dsn,
    postgres_server,
    postgres_with_standby,
)
from tests.support.processes import OriginProcess


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path / "data") as process:
        yield process


@pytest.fixture(autouse=True)
def event_loop_never_blocks() -> Iterator[None]:
    """blockbuster for every test: product code that blocks the running event loop raises BlockingError.

    Only calls with the product on the stack count (the tests' own set-up may block); the real
    server processes get the same watch through tests/support/processes.py.
    """
    if os.environ.get(ENV) == "0":  # the run turned the watch off (to measure what it costs)
        yield
        return
    watch = loop_watch()
    watch.activate()
    try:
        yield
    finally:
        watch.deactivate()
