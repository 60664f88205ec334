"""The two_origins fixture: two origin processes on a fresh database of the session's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.two_origins import TwoOrigins, started_two_origins


@pytest.fixture
def two_origins(tmp_path: Path, postgres_dsn: str) -> Iterator[TwoOrigins]:
    with started_two_origins(tmp_path, postgres_dsn) as origins:
        yield origins
