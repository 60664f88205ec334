"""FileStore: the default, embedded, crash-safe engine.

Layout under the data directory:
    store.json                 generations reserved so far (never reused across restarts)
    streams/<generation>/      one directory per stream incarnation
        manifest.json          configuration; its presence commits the create
        data                   the payloads back to back, appended only (batch_index.py)
        index                  one checksummed entry per written batch, appended only
    trash/                     removed incarnations awaiting deletion

A read of any run of records is one `pread` of the data file. Appends are acknowledged after
write + fdatasync of both files. The service hands each stream's appends over
in batches (group commit), one batch in flight per stream, so concurrent writers share one
fdatasync; different streams sync in parallel on the I/O threads, never behind a global lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from plugin_streams.origin.storage.base import (
    LoadedStream,
    Record,
    RecordsDropped,
    StorageFailure,
    StreamConfig,
    StreamMissing,
    Summary,
)
from plugin_streams.origin.storage.file import batch_index, manifest
from plugin_streams.origin.storage.file.handles import HandlePool
from plugin_streams.origin.storage.file.log_files import LogIndex, mapped, read_range, write_all, write_batch
from plugin_streams.origin.storage.file.manifest import LogState, carried_over
from plugin_streams.origin.storage.file.recovery import recover_stream

logger = logging.getLogger(__name__)
T = TypeVar("T")

GENERATION_BLOCK: Final = 1024
STORE_FILE: Final = "store.json"


class FileStore:
    def __init__(
        self,
        data_dir: str,
        *,
        fsync: bool = True,
        io_threads: int = 8,
        max_open_files: int = 4096,
    ) -> None:
        self._root = os.path.abspath(data_dir)
        self._streams_dir = os.path.join(self._root, "streams")
        self._trash_dir = os.path.join(self._root, "trash")
        self._fsync = fsync
        # Writes (each ending in an fdatasync) and reads get separate threads, so a burst of
        # reads never queues the next group commit behind it, nor the other way round.
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="store-write")
        self._read_executor = ThreadPoolExecutor(io_threads, thread_name_prefix="store-read")
        self._handles = HandlePool(max_open_files, self._open_log)
        self._index: dict[int, LogIndex] = {}
        self._configs: dict[int, StreamConfig] = {}
        self._next_generation = 1
        self._reserved_until = 0
        # One reservation at a time: concurrent creates reaching a block's end would otherwise
        # write the same store.json.tmp together and all but one rename would fail (ENOENT).
        self._reserving = asyncio.Lock()
        # A stream's manifest changes (compaction, soft delete) one at a time, each written from
        # the stream's newest state: one written from a state read before another's could name
        # files a compaction has removed, or drop a soft delete.
        self._manifest_locks: dict[int, asyncio.Lock] = {}
        self._access: dict[int, int] = {}  # access times noted since the last flush
        self._last_access: dict[int, int] = {}  # newest known access time of every stream
        self.discarded_bytes = 0  # torn tails cut off by the last recovery

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object, reading: bool = False) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_executor if reading else self._executor, fn, *args)
        except OSError as exc:
            raise StorageFailure(f"{exc.strerror or exc}") from exc

    def _dir(self, generation: int) -> str:
        return os.path.join(self._streams_dir, f"{generation:016d}")

    def _open_log(self, key: tuple[int, int, str]) -> int:
        generation, file_no, kind = key
        return os.open(os.path.join(self._dir(generation), manifest.numbered(kind, file_no)), os.O_RDWR)

    def _forget_files(self, generation: int, file_no: int) -> None:
        for kind in ("data", "index"):
            self._handles.forget((generation, file_no, kind))

    # -- recovery and generations -----------------------------------------------------------

    async def open(self) -> list[LoadedStream]:
        loaded, reserved = await self._run(self._recover_all)
        highest = max((item.config.generation for item in loaded), default=0)
        self._next_generation = max(reserved, highest + 1, 1)
        await self._reserve()
        return loaded

    def _recover_all(self) -> tuple[list[LoadedStream], int]:
        os.makedirs(self._streams_dir, exist_ok=True)
        os.makedirs(self._trash_dir, exist_ok=True)
        for name in os.listdir(self._trash_dir):
            shutil.rmtree(os.path.join(self._trash_dir, name), ignore_errors=True)
        loaded: list[LoadedStream] = []
        self.discarded_bytes = 0
        for name in sorted(os.listdir(self._streams_dir)):
            directory = os.path.join(self._streams_dir, name)
            if not os.path.exists(os.path.join(directory, manifest.MANIFEST)):
                # An unfinished create: it was never acknowledged.
                shutil.rmtree(directory, ignore_errors=True)
                continue
            recovered = recover_stream(directory)
            self.discarded_bytes += recovered.discarded_bytes
            self._index[recovered.loaded.config.generation] = recovered.index
            self._configs[recovered.loaded.config.generation] = recovered.loaded.config
            self._last_access[recovered.loaded.config.generation] = recovered.loaded.last_access_ms
            loaded.append(recovered.loaded)
        reserved = 0
        try:
            with open(os.path.join(self._root, STORE_FILE), "rb") as f:
                reserved = int(json.loads(f.read())["generations_reserved"])
        except FileNotFoundError:
            pass
        return loaded, reserved

    async def _reserve(self) -> None:
        target = self._next_generation + GENERATION_BLOCK
        await self._run(self._write_store_file, target)
        self._reserved_until = target

    def _write_store_file(self, reserved: int) -> None:
        path = os.path.join(self._root, STORE_FILE)
        with open(path + ".tmp", "wb") as f:
            f.write(json.dumps({"generations_reserved": reserved}).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        manifest.fsync_directory(self._root)

    async def allocate_generation(self) -> int:
        while self._next_generation >= self._reserved_until:
            async with self._reserving:
                if self._next_generation >= self._reserved_until:  # not already done while we waited
                    await self._reserve()
        generation = self._next_generation
        self._next_generation += 1
        return generation

    # -- writes -----------------------------------------------------------------------------

    async def create(self, config: StreamConfig, records: Sequence[Record]) -> None:
        index = LogIndex()
        await self._run(self._create, config, records, index)
        self._index[config.generation] = index
        self._configs[config.generation] = config
        self._last_access[config.generation] = config.created_ms

    def _create(self, config: StreamConfig, records: Sequence[Record], index: LogIndex) -> None:
        directory = self._dir(config.generation)
        os.makedirs(directory)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        data_fd = os.open(os.path.join(directory, index.log.data_name), flags, 0o644)
        try:
            index_fd = os.open(os.path.join(directory, index.log.index_name), flags, 0o644)
            try:
                if records:
                    write_batch(data_fd, index_fd, index, records, sync=True)
                else:
                    os.fsync(data_fd)
                    os.fsync(index_fd)
            finally:
                os.close(index_fd)
        finally:
            os.close(data_fd)
        manifest.write_atomically(directory, config, access_ms=config.created_ms)  # the commit point
        manifest.fsync_directory(self._streams_dir)

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        index = self._index.get(generation)
        if index is None:
            raise StreamMissing(str(generation))
        await self._run(self._append, generation, records, index)

    def _append(self, generation: int, records: Sequence[Record], index: LogIndex) -> None:
        if not records:
            return
        data_key = (generation, index.log.file_no, "data")
        index_key = (generation, index.log.file_no, "index")
        data_fd = self._handles.borrow(data_key)
        try:
            index_fd = self._handles.borrow(index_key)
            try:
                write_batch(data_fd, index_fd, index, records, sync=self._fsync)
            finally:
                self._handles.give_back(index_key)
        finally:
            self._handles.give_back(data_key)

    def _manifest_lock(self, generation: int) -> asyncio.Lock:
        lock = self._manifest_locks.get(generation)
        if lock is None:
            lock = self._manifest_locks[generation] = asyncio.Lock()
        return lock

    async def replace_config(self, config: StreamConfig) -> None:
        async with self._manifest_lock(config.generation):
            index = self._index.get(config.generation)
            if index is None:
                raise StreamMissing(str(config.generation))
            self._configs[config.generation] = config
            access_ms = self._last_access.get(config.generation, config.created_ms)
            await self._run(manifest.write_atomically, self._dir(config.generation), config, access_ms, index.log)

    async def drop_before(self, generation: int, record: int, position: int) -> None:
        async with self._manifest_lock(generation):
            index = self._index.get(generation)
            if index is None:
                raise StreamMissing(str(generation))
            if record <= index.log.first_record:
                return
            config = self._configs[generation]
            access_ms = self._last_access.get(generation, config.created_ms)
            new_index = await self._run(self._compact, config, record, position, index, access_ms)
            self._index[generation] = new_index
            self._forget_files(generation, index.log.file_no)

    def _compact(self, config: StreamConfig, record: int, position: int, index: LogIndex, access_ms: int) -> LogIndex:
        """Copy the kept records into the next file number, commit it in the manifest, drop the old.

        The kept payloads are one range of the data file, copied as is; the kept index entries
        are copied with their data positions moved down, and the one batch the cut goes
        through is written again for its kept records.
        """
        directory = self._dir(config.generation)
        skip = record - index.log.first_record
        start = index.byte_range(skip, skip + 1)[0] if skip < len(index.ends) else index.data_end
        old = index.log
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        source = os.open(os.path.join(directory, old.data_name), os.O_RDONLY)
        entries = os.open(os.path.join(directory, old.index_name), os.O_RDONLY)
        data_fd = os.open(os.path.join(directory, manifest.numbered("data", old.file_no + 1)), flags, 0o644)
        index_fd = os.open(os.path.join(directory, manifest.numbered("index", old.file_no + 1)), flags, 0o644)
        try:
            _copy_range(source, data_fd, start, index.data_end)
            with mapped(entries) as view:
                kept, carried = _split_entries(view[: index.index_end], skip, start, source, old.carried)
            new = LogIndex(log=LogState(old.file_no + 1, record, position, carried))
            write_all(index_fd, kept, 0)
            for end in index.ends[skip:]:
                new.ends.append(end - start)
            new.data_end = index.data_end - start
            new.index_end = sum(len(entry) for entry in kept)
            os.fsync(data_fd)
            os.fsync(index_fd)
        finally:
            for fd in (source, entries, data_fd, index_fd):
                os.close(fd)
        manifest.write_atomically(directory, config, access_ms, new.log)  # the commit point
        # In place before the old files go, so a read that finds them gone finds this (_read).
        self._index[config.generation] = new
        os.unlink(os.path.join(directory, old.data_name))
        os.unlink(os.path.join(directory, old.index_name))
        manifest.fsync_directory(directory)
        return new

    async def remove(self, generation: int) -> None:
        async with self._manifest_lock(generation):  # not under a compaction's feet
            index = self._index.pop(generation, None)
            self._manifest_locks.pop(generation, None)
        if index is None:
            return
        self._access.pop(generation, None)
        self._last_access.pop(generation, None)
        self._configs.pop(generation, None)
        await self._run(self._remove, generation, index.log.file_no)

    def _remove(self, generation: int, file_no: int) -> None:
        self._forget_files(generation, file_no)
        trashed = os.path.join(self._trash_dir, f"{generation:016d}")
        os.replace(self._dir(generation), trashed)
        manifest.fsync_directory(self._streams_dir)
        shutil.rmtree(trashed, ignore_errors=True)

    # -- reads ------------------------------------------------------------------------------

    async def read(self, generation: int, first: int, last: int) -> bytes:
        index = self._index.get(generation)
        if index is None:
            raise StreamMissing(str(generation))
        if first >= last:
            return b""
        return await self._run(self._read, generation, first, last, index, reading=True)

    def _read(self, generation: int, first: int, last: int, index: LogIndex) -> bytes:
        kept_first = first - index.log.first_record
        if kept_first < 0:
            raise RecordsDropped(f"records of stream {generation} were dropped by retention")
        start, end = index.byte_range(kept_first, last - index.log.first_record)
        key = (generation, index.log.file_no, "data")
        try:
            fd = self._handles.borrow(key)
        except FileNotFoundError:
            # A compaction removed the files `index` names after this read took it: the records
            # live on in the files of the index that replaced it (or were dropped: RecordsDropped).
            current = self._index.get(generation)
            if current is None or current is index:
                raise
            return self._read(generation, first, last, current)
        try:
            return read_range(fd, start, end)
        finally:
            self._handles.give_back(key)

    def disk_bytes(self) -> int:
        return sum(index.data_end + index.index_end for index in self._index.values())

    # -- access times -----------------------------------------------------------------------

    def touch(self, generation: int, at_ms: int) -> None:
        if generation in self._index:
            self._access[generation] = at_ms
            self._last_access[generation] = at_ms

    async def flush_access_times(self) -> None:
        if not self._access:
            return
        pending, self._access = self._access, {}
        await self._run(self._utime_all, pending)

    def _utime_all(self, pending: dict[int, int]) -> None:
        for generation, at_ms in pending.items():
            ns = at_ms * 1_000_000
            try:
                os.utime(os.path.join(self._dir(generation), manifest.MANIFEST), ns=(ns, ns))
            except FileNotFoundError:
                pass  # removed meanwhile

    async def close(self) -> None:
        await self.flush_access_times()
        self._handles.close_all()
        # Joining the I/O threads waits for their last write and fdatasync: not on the event loop.
        await asyncio.to_thread(self._join_io_threads)

    def _join_io_threads(self) -> None:
        self._executor.shutdown(wait=True)
        self._read_executor.shutdown(wait=True)


def _copy_range(source: int, target: int, start: int, end: int) -> None:
    copied = 0
    while copied < end - start:
        done = os.copy_file_range(source, target, end - start - copied, start + copied, copied)
        if done == 0:
            raise OSError("short copy while compacting")
        copied += done


def _split_entries(
    entries: memoryview, skip: int, start: int, source: int, carried: Summary | None
) -> tuple[list[bytes], Summary]:
    """Index entries of the records from number `skip` on (their data moved down by `start`),
    and what the records before it leave behind (added to what earlier compactions carried).

    Blocking. The entries were written and synced by this process: their payload checksums are
    carried over, except for the batch the cut goes through, whose kept part is read again.
    """
    kept: list[bytes] = []
    dropped = carried_over(carried)
    first = 0  # number of the batch's first record
    for batch in batch_index.scan(entries, None):
        count = len(batch.lengths)
        for length, meta in zip(batch.lengths[: max(skip - first, 0)], batch.records, strict=False):
            dropped.apply(length, meta)
        if first >= skip:
            crc = batch.payload_crc
            kept.append(batch_index.encode_lengths(batch.data_start - start, batch.lengths, batch.records, crc))
        elif first + count > skip:
            cut = skip - first
            lengths = batch.lengths[cut:]
            data_start = batch.data_start + sum(batch.lengths[:cut])
            crc = zlib.crc32(read_range(source, data_start, data_start + sum(lengths)))
            kept.append(batch_index.encode_lengths(data_start - start, lengths, batch.records[cut:], crc))
        first += count
    return kept, carried_over(dropped)
