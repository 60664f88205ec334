"""Byte-budgeted chunk cache: a memory tier (LRU) and an optional disk tier kept across restarts.

Only immutable chunks are stored: their bytes never change, but a copy is served only while
edge.freshness says so (its max-age, and what the edge knows of its stream's deletion), so the
next read fetches it again, which replaces it. One past its max-age is dropped when found; one
merely unverified is kept for when the origin cannot be reached (`unverified=True`: served as
long as its max-age lasts). A deleted stream's chunks are dropped at once when the edge learns of
it (a write through it, or the change feed).
Each tier keeps, per stream and generation, the sorted chunk starts so that a read from any
byte inside a chunk finds it with one bisect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from bisect import bisect_right, insort
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

import aiofiles
import aiofiles.os
from cachetools import LRUCache

from plugin_streams.edge.chunks import Chunk, ChunkKey
from plugin_streams.edge.freshness import Freshness, capped
from plugin_streams.shared.aio.tasks import spawn

logger = logging.getLogger(__name__)
OVERHEAD = 256  # bookkeeping bytes charged per chunk


class _Starts:
    """Per (scope, generation): sorted chunk starts, for lookups inside chunks; and per stream
    path, its (scope, generation) pairs, so dropping a stream costs its own entries only (the
    change feed drops every stream deleted at the origin)."""

    def __init__(self) -> None:
        self._starts: dict[tuple[str, int], list[int]] = {}
        self._by_path: defaultdict[str, set[tuple[str, int]]] = defaultdict(set)

    def add(self, key: ChunkKey) -> None:
        starts = self._starts.get((key.scope, key.generation))
        if starts is None:
            starts = self._starts[(key.scope, key.generation)] = []
            self._by_path[_path_of(key.scope)].add((key.scope, key.generation))
        i = bisect_right(starts, key.start)
        if i == 0 or starts[i - 1] != key.start:
            insort(starts, key.start)

    def discard(self, key: ChunkKey) -> None:
        starts = self._starts.get((key.scope, key.generation))
        if starts is None:
            return
        i = bisect_right(starts, key.start) - 1
        if i >= 0 and starts[i] == key.start:
            del starts[i]
        if not starts:
            del self._starts[(key.scope, key.generation)]
            path = _path_of(key.scope)
            pairs = self._by_path[path]
            pairs.discard((key.scope, key.generation))
            if not pairs:
                del self._by_path[path]

    def candidate(self, scope: str, generation: int, position: int) -> ChunkKey | None:
        """The chunk that starts at or before `position`, if any."""
        starts = self._starts.get((scope, generation))
        if not starts:
            return None
        i = bisect_right(starts, position) - 1
        return ChunkKey(scope, generation, starts[i]) if i >= 0 else None

    def in_scope(self, scope: str) -> list[ChunkKey]:
        """Every chunk of `scope`, in any generation."""
        pairs = self._by_path.get(_path_of(scope), ())
        return [ChunkKey(s, g, start) for s, g in pairs if s == scope for start in self._starts[(s, g)]]

    def scopes_of(self, path: str) -> list[tuple[str, int]]:
        return list(self._by_path.get(path, ()))

    def keys_of(self, path: str) -> list[ChunkKey]:
        return [ChunkKey(s, g, start) for s, g in self.scopes_of(path) for start in self._starts[(s, g)]]


def _path_of(scope: str) -> str:
    """The stream path of a cache scope ("<path>" or "<path>\\0<credential>", edge.scope)."""
    return scope.partition("\0")[0]


class _MemoryLRU(LRUCache[ChunkKey, Chunk]):
    def __init__(self, maxsize: int, starts: _Starts) -> None:
        super().__init__(maxsize=maxsize, getsizeof=lambda chunk: len(chunk.body) + OVERHEAD)
        self._index = starts

    def popitem(self) -> tuple[ChunkKey, Chunk]:
        key, chunk = super().popitem()
        self._index.discard(key)
        return key, chunk


class ChunkCache:
    def __init__(
        self, memory_bytes: int, disk_dir: str | None = None, disk_bytes: int = 0, freshness: Freshness | None = None
    ) -> None:
        # Without a policy: a copy lives for its max-age (nothing else known of its stream).
        self.freshness = freshness if freshness is not None else Freshness(fallback_age=float("inf"))
        self._starts = _Starts()
        self._memory = _MemoryLRU(max(memory_bytes, 1), self._starts)
        self.disk = DiskTier(disk_dir, disk_bytes, self.freshness) if disk_dir and disk_bytes > 0 else None
        self.hits = {"memory": 0, "disk": 0}
        # Called with the stream path of each read served from a capped chunk (edge.touches).
        self.on_capped_read: Callable[[str], None] | None = None

    async def open(self) -> None:
        if self.disk is not None:
            await self.disk.open()

    @property
    def memory_bytes(self) -> int:
        return int(self._memory.currsize)

    def put(self, chunk: Chunk) -> None:
        self._keep_in_memory(chunk)
        if self.disk is not None:
            self.disk.put_soon(chunk)

    def _keep_in_memory(self, chunk: Chunk) -> None:
        if len(chunk.body) + OVERHEAD <= self._memory.maxsize:
            self._memory[chunk.key] = chunk
            self._starts.add(chunk.key)

    def put_start(self, chunk: Chunk) -> None:
        """Keep `chunk` as the start page of its scope (edge.start_pages), in place of any earlier
        one; in memory only, as it lives no longer than a second or so."""
        self._drop_scope(chunk.key.scope)
        self._keep_in_memory(chunk)

    def start_page(self, scope: str) -> Chunk | None:
        """The fresh start page of `scope` (a start-page scope), if any; an expired one is dropped."""
        keys = self._starts.in_scope(scope)
        chunk = self._memory.get(keys[0]) if len(keys) == 1 else None
        if chunk is None:
            return None
        now = time.time()
        if now >= chunk.expires:
            self._drop_scope(scope)
            return None
        return chunk if self.freshness.fresh(chunk, now) else None

    def _drop_scope(self, scope: str) -> None:
        for key in self._starts.in_scope(scope):
            self._memory.pop(key, None)
            self._starts.discard(key)

    async def find(
        self, scope: str, generation: int, position: int, *, unverified: bool = False
    ) -> tuple[Chunk, str] | None:
        """A fresh cached chunk answering a read from `position`, and the tier it came from
        (counted as served); `unverified`: any within its max-age (the origin is unreachable)."""
        chunk = self.in_memory(scope, generation, position, unverified=unverified)
        if chunk is not None:
            self.served(chunk, "memory")
            return chunk, "memory"
        if self.disk is not None:
            chunk = await self.disk.find(scope, generation, position, unverified=unverified)
            if chunk is not None:
                self.served(chunk, "disk")
                self._keep_in_memory(chunk)
                return chunk, "disk"
        return None

    def in_memory(self, scope: str, generation: int, position: int, *, unverified: bool = False) -> Chunk | None:
        """The memory tier's fresh chunk answering a read from `position` (no disk, no await), if
        any; one past its max-age found on the way is dropped."""
        key = self._starts.candidate(scope, generation, position)
        if key is None:
            return None
        chunk = self._memory.get(key)
        if chunk is None or not chunk.covers(position):
            return None
        now = time.time()
        if now >= chunk.expires:
            del self._memory[key]
            self._starts.discard(key)
            return None
        return chunk if unverified or self.freshness.fresh(chunk, now) else None

    def served(self, chunk: Chunk, tier: str) -> None:
        """A read was answered from `chunk` (the fast lane says so itself)."""
        self.hits[tier] += 1
        if self.on_capped_read is not None and capped(chunk):
            self.on_capped_read(_path_of(chunk.key.scope))

    def may_have(self, scope: str, generation: int, position: int) -> bool:
        """Whether some tier may hold a chunk answering a read from `position` (cheap, no I/O)."""
        if self.in_memory(scope, generation, position) is not None:
            return True
        return self.disk is not None and self.disk.may_have(scope, generation, position)

    def drop_stream(self, path: str) -> None:
        for key in self._starts.keys_of(path):
            self._memory.pop(key, None)
            self._starts.discard(key)
        if self.disk is not None:
            self.disk.drop_stream(path)


class DiskTier:
    """Chunks as files `<sha256>.chunk`: one JSON header line, then the body. LRU by bytes."""

    def __init__(self, directory: str, max_bytes: int, freshness: Freshness) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.freshness = freshness
        self._files: OrderedDict[ChunkKey, tuple[str, int, dict[str, Any]]] = OrderedDict()
        self._starts = _Starts()
        self.bytes = 0
        # Files forgotten but not yet unlinked: unlinks run in a thread, a batch at a time, so
        # dropping a stream of many chunks never holds the event loop for one unlink per chunk.
        self._doomed: set[str] = set()
        self._unlinking: set[str] = set()
        self._unlinker: asyncio.Task[None] | None = None

    def _name(self, key: ChunkKey) -> str:
        digest = hashlib.sha256(f"{key.scope}\0{key.generation}\0{key.start}".encode()).hexdigest()
        return os.path.join(self.directory, digest + ".chunk")

    async def open(self) -> None:
        await aiofiles.os.makedirs(self.directory, exist_ok=True)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, _scan_directory, self.directory)
        for key, path, size, header in sorted(found, key=lambda item: item[3]["stored"]):
            self._remember(key, path, size, header)
        self._evict()

    def _remember(self, key: ChunkKey, path: str, size: int, header: dict[str, Any]) -> None:
        replaced = self._files.get(key)
        if replaced is not None:
            self.bytes -= replaced[1]
        self._files[key] = (path, size, header)
        self._files.move_to_end(key)
        self._starts.add(key)
        self.bytes += size

    def _fresh(self, header: dict[str, Any]) -> bool:
        return self.freshness.fresh_copy(header["stored"], header["expires"])

    def put_soon(self, chunk: Chunk) -> None:
        held = self._files.get(chunk.key)
        if (held is not None and self._fresh(held[2])) or len(chunk.body) > self.max_bytes:
            return
        spawn(self._write(chunk), name="edge-disk-cache-write")

    async def _write(self, chunk: Chunk) -> None:
        header = {
            "scope": chunk.key.scope,
            "generation": chunk.key.generation,
            "start": chunk.key.start,
            "end": chunk.end,
            "content_type": chunk.content_type,
            "cache_control": chunk.cache_control,
            "surrogate_key": chunk.surrogate_key,
            "stored": chunk.stored,  # unix seconds, so its age survives a restart
            "expires": chunk.expires,
        }
        path = self._name(chunk.key)
        line = json.dumps(header).encode() + b"\n"
        while self._unlinker is not None and (path in self._doomed or path in self._unlinking):
            await asyncio.shield(self._unlinker)  # the name is reused: its old file must go first
        try:
            async with aiofiles.open(path + ".tmp", "wb") as f:
                await f.write(line + chunk.body)
            await aiofiles.os.replace(path + ".tmp", path)
        except OSError:
            logger.exception("disk cache write failed")
            return
        self._remember(chunk.key, path, len(line) + len(chunk.body), header)
        self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._files:
            self._forget(next(iter(self._files)))  # the least recently used

    def may_have(self, scope: str, generation: int, position: int) -> bool:
        key = self._starts.candidate(scope, generation, position)
        entry = self._files.get(key) if key is not None else None
        if entry is None or not self._fresh(entry[2]):
            return False
        meta = entry[2]
        return bool(position == meta["start"] or position < meta["end"])

    async def find(self, scope: str, generation: int, position: int, *, unverified: bool = False) -> Chunk | None:
        key = self._starts.candidate(scope, generation, position)
        if key is None or key not in self._files:
            return None
        path, _, header = self._files[key]
        if time.time() >= header["expires"]:
            self._forget(key)
            return None
        if not unverified and not self._fresh(header):
            return None
        try:
            async with aiofiles.open(path, "rb") as f:
                data = await f.read()
        except FileNotFoundError:
            return None
        body = data[data.index(b"\n") + 1 :]
        chunk = Chunk.make(
            key,
            header["end"],
            body,
            header["content_type"],
            header["cache_control"],
            header["surrogate_key"],
            stored=header["stored"],
        )
        if not chunk.covers(position):
            return None
        self._files.move_to_end(key)
        return chunk

    def drop_stream(self, path: str) -> None:
        for key in self._starts.keys_of(path):
            if key in self._files:
                self._forget(key)

    def _forget(self, key: ChunkKey) -> None:
        file_path, size, _ = self._files.pop(key)
        self._starts.discard(key)
        self.bytes -= size
        self._doomed.add(file_path)
        if self._unlinker is None:
            self._unlinker = spawn(self._unlink_doomed(), name="edge-disk-cache-unlink")

    async def _unlink_doomed(self) -> None:
        try:
            while self._doomed:
                self._unlinking, self._doomed = self._doomed, set()
                await asyncio.to_thread(_unlink_all, self._unlinking)
                self._unlinking = set()
        finally:
            self._unlinker = None


def _unlink_all(paths: set[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _scan_directory(directory: str) -> list[tuple[ChunkKey, str, int, dict[str, Any]]]:
    found = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.endswith(".tmp"):
            os.unlink(path)
            continue
        if not name.endswith(".chunk"):
            continue
        try:
            with open(path, "rb") as f:
                header = json.loads(f.readline())
            key = ChunkKey(header["scope"], int(header["generation"]), int(header["start"]))
            # Older files name no lifetime: unknown age, so not served.
            if not float(header["stored"]) <= time.time() < float(header["expires"]):
                raise ValueError("expired")
            found.append((key, path, os.path.getsize(path), header))
        except (OSError, ValueError, KeyError, TypeError):
            os.unlink(path)
    return found
