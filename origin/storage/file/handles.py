"""A bounded pool of open log file descriptors.

Streams are many and file descriptors few, so idle descriptors are closed least-recently-used
first. A descriptor lent to a running I/O job is never closed under it: eviction of a busy one
is deferred until the job gives it back. Methods are called from I/O worker threads, so one
lock guards the bookkeeping (never held across a read, write or fsync).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)  # what names one log file (the engine uses (generation, segment))


class HandlePool(Generic[K]):
    def __init__(self, capacity: int, opener: Callable[[K], int]) -> None:
        self._capacity = capacity
        self._opener = opener
        self._idle: OrderedDict[K, int] = OrderedDict()
        self._busy: dict[K, tuple[int, int]] = {}  # key -> (fd, borrowers)
        self._doomed: set[K] = set()
        self._lock = threading.Lock()

    def borrow(self, key: K) -> int:
        """Blocking (may open a file): an fd for `key`, to be given back with `give_back`."""
        with self._lock:
            return self._borrow(key)

    def _borrow(self, key: K) -> int:
        if key in self._busy:
            fd, count = self._busy[key]
            self._busy[key] = (fd, count + 1)
            return fd
        idle = self._idle.pop(key, None)
        fd = self._opener(key) if idle is None else idle
        self._busy[key] = (fd, 1)
        self._evict()
        return fd

    def give_back(self, key: K) -> None:
        with self._lock:
            self._give_back(key)

    def _give_back(self, key: K) -> None:
        fd, count = self._busy[key]
        if count > 1:
            self._busy[key] = (fd, count - 1)
            return
        del self._busy[key]
        if key in self._doomed:
            self._doomed.discard(key)
            os.close(fd)
            return
        self._idle[key] = fd
        self._evict()

    def forget(self, key: K) -> None:
        """Close `key`'s descriptor now, or when its last borrower gives it back."""
        with self._lock:
            fd = self._idle.pop(key, None)
            if fd is not None:
                os.close(fd)
            elif key in self._busy:
                self._doomed.add(key)

    def _evict(self) -> None:
        while self._idle and len(self._idle) + len(self._busy) > self._capacity:
            _, fd = self._idle.popitem(last=False)
            os.close(fd)

    def close_all(self) -> None:
        with self._lock:
            for fd in self._idle.values():
                os.close(fd)
            self._idle.clear()
