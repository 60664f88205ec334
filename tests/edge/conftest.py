"""Fixtures for edge tests: origin and edge processes started on demand and always stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import EdgeProcess, OriginProcess, ServerProcess


class Servers:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServerProcess] = []

    def origin(self, *flags: str, data_dir: Path | None = None, long_poll_timeout: float = 10.0) -> OriginProcess:
        process = OriginProcess(data_dir or self.tmp_path / "data", *flags, long_poll_timeout=long_poll_timeout)
        self.started.append(process)
        return process.start()

    def edge(self, origin_url: str, *flags: str, long_poll_timeout: float = 10.0) -> EdgeProcess:
        process = EdgeProcess(origin_url, self.tmp_path, *flags, long_poll_timeout=long_poll_timeout)
        self.started.append(process)
        return process.start()

    async def aorigin(
        self, *flags: str, data_dir: Path | None = None, long_poll_timeout: float = 10.0
    ) -> OriginProcess:
        """Start an origin without blocking the test's event loop (clients keep running)."""
        process = OriginProcess(data_dir or self.tmp_path / "data", *flags, long_poll_timeout=long_poll_timeout)
        self.started.append(process)
        return await asyncio.to_thread(process.start)

    def logs(self) -> str:
        out = []
        for process in self.started:
            if process.log_path.exists():
                out.append(f"--- {process.log_path.name}\n{process.log_path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    yield s
    for process in reversed(s.started):
        if process.proc is None or process.proc.poll() is not None:
            process._close()
            continue
        try:
            process.stop(timeout=15)
        except Exception:
            process.kill()
