"""Shared fixtures: data directories, real origin processes, and the in-process origin (memory_client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.memory_origin import memory_client  # noqa: F401  (a fixture for every test)
from tests.support.processes import OriginProcess


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path / "data") as process:
        yield process
