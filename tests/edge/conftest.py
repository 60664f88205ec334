"""Fixtures for edge tests: origin and edge processes started on demand and always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessGroup, process_group

#: Edge tests' processes (the name their annotations use).
Servers = ProcessGroup


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Origins and edges started on demand, a 10 s long-poll timeout unless a test asks for another."""
    with process_group(tmp_path, long_poll_timeout=10.0) as started:
        yield started
