"""Shared fixtures: data directories and real origin processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import OriginProcess


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path / "data") as process:
        yield process
