"""In-place upgrade of one stream directory from format 1 (`log`) to format 2 (`data` + `index`).

Run by recovery at start-up, before the origin serves. The valid records of the old log (its
torn tail cut off, as format 1 recovery did) are copied into new data and index files, which
are synced; replacing the manifest with a version 2 one is the commit point; the old log is
removed after it. A crash anywhere in between leaves either the old manifest (the new files
are leftovers, removed at the next start, and the upgrade runs again) or the new one (the old
log is the leftover). Nothing is lost either way and the upgrade never runs twice over its
own output.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Final

from plugin_streams.origin.storage.base import Record
from plugin_streams.origin.storage.file import batch_index, log_v1, manifest
from plugin_streams.origin.storage.file.log_files import mapped, write_all

if TYPE_CHECKING:
    from plugin_streams.origin.storage.file.recovery import FoundManifest

logger = logging.getLogger(__name__)

#: Records and payload bytes per index entry written by the upgrade (bounded: the batch is in memory).
BATCH_RECORDS: Final = 4096
BATCH_BYTES: Final = 8 * 1024 * 1024


def upgrade_stream(directory: str, found: FoundManifest) -> None:
    log = found.log
    for name in os.listdir(directory):
        if manifest.is_record_file(name) and name != log.legacy_name:
            os.unlink(os.path.join(directory, name))  # a crashed upgrade's leftovers
    source = os.open(os.path.join(directory, log.legacy_name), os.O_RDONLY | os.O_CREAT, 0o644)
    data_fd = os.open(os.path.join(directory, log.data_name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    index_fd = os.open(os.path.join(directory, log.index_name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    records = 0
    try:
        with mapped(source) as old:
            data_at = index_at = 0
            batch: list[Record] = []
            batch_bytes = 0
            for found_record in log_v1.scan(old):
                start = found_record.payload_start
                payload = bytes(old[start : start + found_record.payload_len])
                meta = found_record.record
                batch.append(Record(payload, meta.closed, meta.producer, meta.stream_seq, meta.written_ms))
                batch_bytes += len(payload)
                if len(batch) >= BATCH_RECORDS or batch_bytes >= BATCH_BYTES:
                    data_at, index_at = _write(data_fd, index_fd, batch, data_at, index_at)
                    records += len(batch)
                    batch, batch_bytes = [], 0
            if batch:
                _write(data_fd, index_fd, batch, data_at, index_at)
                records += len(batch)
        os.fsync(data_fd)
        os.fsync(index_fd)
    finally:
        for fd in (source, data_fd, index_fd):
            os.close(fd)
    manifest.write_atomically(directory, found.config, found.access_ns // 1_000_000, log)  # the commit point
    os.unlink(os.path.join(directory, log.legacy_name))
    manifest.fsync_directory(directory)
    logger.info(
        "upgrade: stream %r (generation %d): %d records moved from format 1 to format 2",
        found.config.path,
        found.config.generation,
        records,
    )


def _write(data_fd: int, index_fd: int, batch: list[Record], data_at: int, index_at: int) -> tuple[int, int]:
    entry = batch_index.encode(data_at, batch)
    write_all(data_fd, [record.payload for record in batch if record.payload], data_at)
    write_all(index_fd, [entry], index_at)
    return data_at + sum(len(record.payload) for record in batch), index_at + len(entry)
