"""One stream's record files (format 2, file/batch_index.py) and their in-memory index.

Blocking code, run on the engine's I/O threads. Writes go to the end of both files and are
synced before anything is acknowledged; a failed batch is cut off both files again. The index
is extended only after its batch is durable, so a read never names bytes not yet on disk.
"""

from __future__ import annotations

import logging
import mmap
import os
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from plugin_streams.origin.storage.base import Record
from plugin_streams.origin.storage.file import batch_index
from plugin_streams.origin.storage.file.manifest import LogState

logger = logging.getLogger(__name__)

IOV_MAX: Final = 1024


@dataclass(slots=True)
class LogIndex:
    """Where each kept record's payload ends in the data file, and where both files end.

    Entry i describes record number `log.first_record + i`; record i starts where record i - 1
    ends (the first at 0). Only ends are kept: an entry, once there, never changes, so a read on
    one thread and an append on another never see a half-updated pair. A compaction never
    changes an index in place: a new one replaces it, so a read holding the old one stays
    consistent.
    """

    ends: array[int] = field(default_factory=lambda: array("q"))
    data_end: int = 0
    index_end: int = 0
    log: LogState = field(default_factory=LogState)

    def byte_range(self, first: int, last: int) -> tuple[int, int]:
        """The data file range of kept records [first, last) (numbered from the first kept)."""
        return (self.ends[first - 1] if first else 0), self.ends[last - 1]


def write_batch(data_fd: int, index_fd: int, index: LogIndex, records: Sequence[Record], *, sync: bool) -> None:
    """Write one batch at the end of both files, sync both, then extend `index`.

    The two syncs need no order between them: recovery keeps a batch only if its entry and its
    payloads both arrived (file/batch_index.py). On any failure both files are cut back, so a
    failed batch leaves no trace.
    """
    payloads = [record.payload for record in records]
    lengths = [len(payload) for payload in payloads]
    entry = batch_index.encode_lengths(index.data_end, lengths, records, batch_index.data_crc(payloads))
    try:
        write_all(data_fd, [p for p in payloads if p], index.data_end)
        write_all(index_fd, [entry], index.index_end)
        if sync:
            sync_both(data_fd, index_fd)
    except BaseException:
        for fd, at in ((data_fd, index.data_end), (index_fd, index.index_end)):
            try:
                os.ftruncate(fd, at)
            except OSError:
                logger.exception("could not cut back a failed append")
        raise
    end = index.data_end
    for length in lengths:
        end += length
        index.ends.append(end)
    index.data_end = end
    index.index_end += len(entry)


#: Syncs the index file while the writing thread syncs the data file: the two need no order
#: (recovery checks each batch against both), so an append waits for one sync, not two.
#: (bench/speed.py, 100 B appends at c=1, p50: 0.42 and 0.38 ms this way, 0.46 and 0.41 ms one
#: sync after the other, runs interleaved).
_INDEX_SYNCS = ThreadPoolExecutor(8, thread_name_prefix="store-sync")


def sync_both(data_fd: int, index_fd: int) -> None:
    index_synced = _INDEX_SYNCS.submit(os.fdatasync, index_fd)
    try:
        os.fdatasync(data_fd)
    finally:
        index_synced.result()  # raises the index sync's OSError, if any


def write_all(fd: int, buffers: Sequence[bytes], at: int) -> None:
    """pwritev every buffer at `at`, finishing short writes byte-exactly."""
    for i in range(0, len(buffers), IOV_MAX):
        chunk = buffers[i : i + IOV_MAX]
        expected = sum(len(b) for b in chunk)
        done = os.pwritev(fd, chunk, at)
        while done < expected:
            rest = b"".join(chunk)[done:]
            done += os.pwrite(fd, rest, at + done)
        at += expected


def read_range(fd: int, start: int, end: int) -> bytes:
    data = os.pread(fd, end - start, start)
    if len(data) != end - start:
        raise OSError(f"short read: {len(data)} of {end - start} bytes at {start}")
    return data


@contextmanager
def mapped(fd: int) -> Iterator[memoryview]:
    """The whole file, read-only, as a memoryview (empty for an empty file)."""
    size = os.fstat(fd).st_size
    if size == 0:
        yield memoryview(b"")
        return
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as region:
        view = memoryview(region)
        try:
            yield view
        finally:
            view.release()
