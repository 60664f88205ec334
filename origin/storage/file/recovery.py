"""Start-up recovery of one stream directory: checksums, torn-tail truncation, state rebuilt.

Blocking code, run off the event loop. Recovery is idempotent: a second run over its own
output finds every record valid and changes nothing. Log files other than the one the
manifest names (left by a compaction that crashed before or after its commit point) are removed.
"""

from __future__ import annotations

import logging
import mmap
import os
from array import array
from dataclasses import dataclass

from plugin_streams.origin.storage.base import LoadedStream, Summary
from plugin_streams.origin.storage.file import manifest, segment
from plugin_streams.origin.storage.file.manifest import LogState

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LogIndex:
    """Where each kept record's payload lies in the current log file, and where the log ends.

    Entry i describes record number `log.first_record + i`. An index is never changed in place
    by a compaction: a new one replaces it, so a read holding the old one stays consistent.
    """

    payload_pos: array[int]
    payload_len: array[int]
    end: int
    log: LogState


def empty_index(log: LogState | None = None) -> LogIndex:
    return LogIndex(array("q"), array("q"), 0, log or LogState())


@dataclass(slots=True)
class RecoveredStream:
    loaded: LoadedStream
    index: LogIndex
    discarded_bytes: int


def recover_stream(directory: str) -> RecoveredStream:
    with open(os.path.join(directory, manifest.MANIFEST), "rb") as f:
        config, log = manifest.from_json(f.read())
        access_ns = os.fstat(f.fileno()).st_mtime_ns
    for name in os.listdir(directory):
        if name.startswith("log") and name != log.file_name:
            os.unlink(os.path.join(directory, name))
    fd = os.open(os.path.join(directory, log.file_name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        index, summary, size = _scan(fd, log)
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
    loaded = LoadedStream(config, summary, access_ns // 1_000_000, log.first_record, log.first_position)
    return RecoveredStream(loaded, index, discarded)


def _scan(fd: int, log: LogState) -> tuple[LogIndex, Summary, int]:
    size = os.fstat(fd).st_size
    index = empty_index(log)
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
