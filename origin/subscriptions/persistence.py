"""Subscriptions on disk: one JSON document in the data directory, replaced atomically.

The document holds the webhook signing key's seed and every subscription's durable part (its
configuration, links with acked offsets, generation). A save writes a temporary file, fsyncs it,
renames it over the old one and fsyncs the directory, in a worker thread: a crash leaves either
the old document or the new one, and the event loop never waits on the disk. Saves are
serialised and coalesced: callers that asked while one was running share the next.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

FILE_NAME = "subscriptions.json"
FORMAT = 1


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a subscriptions document of format {FORMAT}")
    return document


class SubscriptionFile:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / FILE_NAME
        self._lock = asyncio.Lock()
        self._wanted = 0  # bumped by every save request
        self._written = 0  # the request number the file on disk reflects
        # The write running in a worker thread. A caller cancelled while it runs releases the lock,
        # but the thread goes on: the next write waits for it, so two never share the temporary file.
        self._in_flight: asyncio.Future[None] | None = None

    async def load(self) -> dict[str, Any] | None:
        return await asyncio.get_running_loop().run_in_executor(None, _read, self.path)

    async def save(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Make the state that `snapshot()` returns (taken at write time) durable before returning."""
        self._wanted += 1
        mine = self._wanted
        async with self._lock:
            if self._written >= mine:
                return  # a save that started after our request already covered it
            if self._in_flight is not None and not self._in_flight.done():
                await asyncio.wait([self._in_flight])
            taken = self._wanted
            data = json.dumps({"format": FORMAT, **snapshot()}, separators=(",", ":")).encode()
            self._in_flight = asyncio.get_running_loop().run_in_executor(None, _write_atomically, self.path, data)
            await asyncio.shield(self._in_flight)  # cancelling us must not mark the running write done
            self._written = taken
