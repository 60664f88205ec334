"""Two origin processes on one PostgreSQL database (the postgres engine): any of them serves any stream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import OriginProcess, process_group


@dataclass
class TwoOrigins:
    a: OriginProcess
    b: OriginProcess

    @property
    def both(self) -> tuple[OriginProcess, OriginProcess]:
        return (self.a, self.b)


@contextmanager
def started_two_origins(tmp_path: Path, dsn: str) -> Iterator[TwoOrigins]:
    """Two origin processes on the database `dsn` (each with its own, unused, data directory)."""
    engine = ("--engine", "postgres", "--database-url", dsn)
    with process_group(tmp_path, long_poll_timeout=0.5) as group:
        yield TwoOrigins(group.origin(*engine, data_dir=tmp_path / "a"), group.origin(*engine, data_dir=tmp_path / "b"))
