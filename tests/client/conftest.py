"""Fixtures for client tests: a shared origin (small chunks), and processes started on demand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import EdgeProcess, OriginProcess, ServerProcess


@pytest.fixture(scope="module")
def shared_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    data = tmp_path_factory.mktemp("client") / "data"
    with OriginProcess(data, "--chunk-size", "1024", "--sse-keepalive", "0.5") as process:
        yield process


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"c/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


class Processes:
    """Origins and edges a test starts (and may kill); all are stopped when the test ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServerProcess] = []

    def origin(self, *flags: str, data_dir: Path | None = None) -> OriginProcess:
        process = OriginProcess(data_dir or self.tmp_path / "data", *flags)
        self.started.append(process)
        return process.start()

    def edge(self, origin_url: str, *flags: str) -> EdgeProcess:
        process = EdgeProcess(origin_url, self.tmp_path, *flags)
        self.started.append(process)
        return process.start()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name}\n{p.log_path.read_text(errors='replace')[-3000:]}"
            for p in self.started
            if p.log_path.exists()
        )


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    for process in reversed(started.started):
        if process.proc is None or process.proc.poll() is not None:
            process._close()
            continue
        try:
            process.stop(timeout=15)
        except Exception:
            process.kill()
