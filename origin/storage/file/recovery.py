"""Start-up recovery of one stream directory: checksums, torn-tail truncation, state rebuilt.

Blocking code, run off the event loop. Recovery is idempotent: a second run over its own
output finds every record valid and changes nothing.
"""

from __future__ import annotations

import logging
import mmap
import os
from array import array
from dataclasses import dataclass

from origin.storage.base import LoadedStream, Summary
from origin.storage.file import manifest, segment

LOG_FILE = "log"
logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LogIndex:
    """Where each record's payload lies in the log file, and where the valid log ends."""

    payload_pos: array[int]
    payload_len: array[int]
    end: int


@dataclass(slots=True)
class RecoveredStream:
    loaded: LoadedStream
    index: LogIndex
    discarded_bytes: int


def recover_stream(directory: str) -> RecoveredStream:
    with open(os.path.join(directory, manifest.MANIFEST), "rb") as f:
        config = manifest.from_json(f.read())
        access_ns = os.fstat(f.fileno()).st_mtime_ns
    log_path = os.path.join(directory, LOG_FILE)
    fd = os.open(log_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        index, summary, size = _scan(fd)
        discarded = size - index.end
        if discarded:
            logger.warning(
                "recovery: stream %r (generation %d): discarded %d bytes of torn or corrupt tail",
                config.path,
                config.generation,
                discarded,
            )
            os.ftruncate(fd, index.end)
            os.fsync(fd)
    finally:
        os.close(fd)
    loaded = LoadedStream(config, summary, access_ns // 1_000_000)
    return RecoveredStream(loaded, index, discarded)


def _scan(fd: int) -> tuple[LogIndex, Summary, int]:
    size = os.fstat(fd).st_size
    index = LogIndex(array("q"), array("q"), 0)
    summary = Summary()
    if size == 0:
        return index, summary, 0
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            for found in segment.scan(view):
                index.payload_pos.append(found.payload_start)
                index.payload_len.append(found.payload_len)
                index.end = found.end
                summary.apply(found.payload_len, found.record)
        finally:
            view.release()
    return index, summary, size
