"""Fixtures for edge tests: origin and edge processes started on demand and always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup


class Servers(ProcessGroup):
    """Edge tests' processes: a 10 s long-poll timeout unless a test asks for another."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, long_poll_timeout=10.0)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    yield s
    s.stop_all()
