"""Database snapshot files in one directory (`<data-dir>/kv/<db>.snapshot`), replaced atomically.

A write goes to `<db>.snapshot.tmp`, is fsynced, renamed over the snapshot and the directory is
fsynced: after a crash at any point the snapshot is the old one or the new one, whole. A crash
mid-write leaves a torn temporary file, which nothing reads and the next write replaces.

Every method blocks (file I/O): callers run them in a thread (`asyncio.to_thread`). Database
names ([A-Za-z0-9][A-Za-z0-9_.-]*, shared/kv/routes.py) are safe file names, and every snapshot
name ends in `.snapshot`, every temporary one in `.tmp`, so no two databases share a file.
"""

from __future__ import annotations

import os
from typing import Final

SUFFIX: Final = ".snapshot"
TEMP_SUFFIX: Final = ".snapshot.tmp"


class SnapshotFiles:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, db: str) -> str:
        return os.path.join(self.directory, db + SUFFIX)

    def read(self, db: str) -> bytes | None:
        """The snapshot's bytes, or None when there is none."""
        try:
            with open(self.path(db), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def write(self, db: str, data: bytes) -> None:
        """Replace the snapshot of `db` with `data`, durably and atomically."""
        os.makedirs(self.directory, exist_ok=True)
        temp = os.path.join(self.directory, db + TEMP_SUFFIX)
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, self.path(db))
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power loss
        finally:
            os.close(directory)
