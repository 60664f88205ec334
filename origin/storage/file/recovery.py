"""Start-up recovery of one stream directory: checksums, torn-tail truncation, state rebuilt.

Blocking code, run off the event loop. Recovery is idempotent: a second run over its own
output finds every batch valid and changes nothing. Record files other than the ones the
manifest names (left by a compaction or an upgrade that crashed before or after its commit
point) are removed. A directory still in format 1 is upgraded first (file/upgrade.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from plugin_streams.origin.storage.base import LoadedStream, Summary
from plugin_streams.origin.storage.file import batch_index, manifest, upgrade
from plugin_streams.origin.storage.file.log_files import LogIndex, mapped
from plugin_streams.origin.storage.file.manifest import carried_over

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RecoveredStream:
    loaded: LoadedStream
    index: LogIndex
    discarded_bytes: int


def recover_stream(directory: str) -> RecoveredStream:
    found = read_manifest(directory)
    if found.version == manifest.LEGACY_VERSION:
        upgrade.upgrade_stream(directory, found)
        found = read_manifest(directory)
    log = found.log
    config = found.config
    for name in os.listdir(directory):
        if manifest.is_record_file(name) and name not in (log.data_name, log.index_name):
            os.unlink(os.path.join(directory, name))
    data_fd = os.open(os.path.join(directory, log.data_name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        index_fd = os.open(os.path.join(directory, log.index_name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            index, summary, sizes = _scan(data_fd, index_fd, log)
            discarded = sizes[0] - index.data_end + sizes[1] - index.index_end
            if discarded:
                logger.warning(
                    "recovery: stream %r (generation %d): discarded %d bytes of torn or corrupt tail",
                    config.path,
                    config.generation,
                    discarded,
                )
                for fd, end in ((data_fd, index.data_end), (index_fd, index.index_end)):
                    os.ftruncate(fd, end)
                    os.fsync(fd)
        finally:
            os.close(index_fd)
    finally:
        os.close(data_fd)
    access_ms = found.access_ns // 1_000_000
    loaded = LoadedStream(config, summary, access_ms, log.first_record, log.first_position)
    return RecoveredStream(loaded, index, discarded)


@dataclass(frozen=True, slots=True)
class FoundManifest(manifest.Manifest):
    access_ns: int


def read_manifest(directory: str) -> FoundManifest:
    with open(os.path.join(directory, manifest.MANIFEST), "rb") as f:
        parsed = manifest.from_json(f.read())
        access_ns = os.fstat(f.fileno()).st_mtime_ns
    return FoundManifest(parsed.config, parsed.log, parsed.version, access_ns)


def _scan(data_fd: int, index_fd: int, log: manifest.LogState) -> tuple[LogIndex, Summary, tuple[int, int]]:
    index = LogIndex(log=log)
    summary = carried_over(log.carried)
    with mapped(data_fd) as data, mapped(index_fd) as entries:
        for batch in batch_index.scan(entries, data):
            end = batch.data_start
            for length, record in zip(batch.lengths, batch.records, strict=True):
                end += length
                index.ends.append(end)
                summary.apply(length, record)
            index.data_end = end
            index.index_end = batch.entry_end
        return index, summary, (len(data), len(entries))
