"""Fixtures for client tests: a shared origin (small chunks), processes started on demand, and the
three servers the protocol-mode suite runs against (this project's origin, an edge in front of
one, the Node reference server `@durable-streams/server`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.node_reference import NodeReferenceServer
from tests.support.processes import EdgeProcess, OriginProcess, ProcessGroup, process_group

#: Where each server under test keeps its protocol streams.
PROTOCOL_ROOT = "/v1/stream"
PROTOCOL_SERVERS = ("origin", "edge", "node")


@pytest.fixture(scope="module")
def shared_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    data = tmp_path_factory.mktemp("client") / "data"
    with OriginProcess(data, "--chunk-size", "1024", "--sse-keepalive", "0.5") as process:
        yield process


@pytest.fixture(scope="module", params=PROTOCOL_SERVERS)
def protocol_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The protocol's base URL (`.../v1/stream`) of each server in turn, one per test module."""
    if request.param == "node":
        with NodeReferenceServer() as node:
            assert node.url is not None
            yield node.url + PROTOCOL_ROOT
        return
    root = tmp_path_factory.mktemp(f"protocol-{request.param}")
    with OriginProcess(root / "data", "--chunk-size", "1024", "--sse-keepalive", "0.5") as origin:
        if request.param == "origin":
            yield origin.url + PROTOCOL_ROOT
            return
        with EdgeProcess(origin.url, root) as edge:
            yield edge.url + PROTOCOL_ROOT


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
