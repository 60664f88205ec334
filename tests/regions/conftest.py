"""Fixtures for region tests: the edge tests' process fixture, plus a region behind a delayed link."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.edge.conftest import Servers, servers  # noqa: F401  (re-exported fixture)
from tests.support.delay_proxy import ThreadedDelayProxy
from tests.support.processes import EdgeProcess, OriginProcess


class Regions:
    """An origin in one region; replicas in another, reaching it through a delay proxy."""

    def __init__(self, processes: Servers, delay: float, long_poll_timeout: float) -> None:
        self.servers = processes
        self.long_poll_timeout = long_poll_timeout
        self.origin: OriginProcess = processes.origin(long_poll_timeout=long_poll_timeout)
        self.link = ThreadedDelayProxy("127.0.0.1", int(self.origin.url.rsplit(":", 1)[1]), delay)

    def replica(self, *flags: str, name: str = "eu", directory: str = "replica") -> EdgeProcess:
        return self.servers.edge(
            self.link.url,
            "--region",
            name,
            "--replica-dir",
            str(self.servers.tmp_path / directory),
            *flags,
            long_poll_timeout=self.long_poll_timeout,
        )


@pytest.fixture
def regions(servers: Servers) -> Iterator[Regions]:  # noqa: F811
    r = Regions(servers, delay=0.05, long_poll_timeout=2.0)
    yield r
    r.link.close()
