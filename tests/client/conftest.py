"""Fixtures for client tests: a shared origin (small chunks), and processes started on demand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import OriginProcess, ProcessGroup, process_group


@pytest.fixture(scope="module")
def shared_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    data = tmp_path_factory.mktemp("client") / "data"
    with OriginProcess(data, "--chunk-size", "1024", "--sse-keepalive", "0.5") as process:
        yield process


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"c/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


#: Client tests' processes (the name their annotations use).
Processes = ProcessGroup


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Origins and edges started on demand, with the servers' default 0.5 s long-poll timeout."""
    with process_group(tmp_path, long_poll_timeout=0.5) as started:
        yield started
