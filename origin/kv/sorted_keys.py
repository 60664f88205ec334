"""A sorted set of byte strings in blocks: O(log n) search, O(log n + block) insert and delete.

One flat sorted list would make every insert shift the whole list; blocks of at most 2 x 512 keys
(the layout of sortedcontainers' SortedList, which is not a server dependency) keep the shifting
local, and a parallel list of each block's largest key finds the block by bisection. Iteration
works on half-open byte ranges [low, high), forwards or backwards, and costs what it yields.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Final

_LOAD: Final = 512


class SortedKeys:
    __slots__ = ("_blocks", "_len", "_maxes")

    def __init__(self, keys: list[bytes] | None = None) -> None:
        """`keys`, if given, must already be sorted and distinct (as a snapshot lists them)."""
        ordered = keys or []
        self._blocks: list[list[bytes]] = [ordered[i : i + _LOAD] for i in range(0, len(ordered), _LOAD)]
        self._maxes: list[bytes] = [block[-1] for block in self._blocks]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def add(self, key: bytes) -> None:
        """Insert `key`, which must not be present (the index checks its dict first)."""
        if not self._blocks:
            self._blocks.append([key])
            self._maxes.append(key)
            self._len = 1
            return
        i = min(bisect_left(self._maxes, key), len(self._blocks) - 1)
        block = self._blocks[i]
        insort(block, key)
        self._maxes[i] = block[-1]
        self._len += 1
        if len(block) > 2 * _LOAD:
            self._blocks[i : i + 1] = [block[:_LOAD], block[_LOAD:]]
            self._maxes[i : i + 1] = [block[_LOAD - 1], block[-1]]

    def remove(self, key: bytes) -> None:
        i = bisect_left(self._maxes, key)
        block = self._blocks[i] if i < len(self._blocks) else []
        j = bisect_left(block, key)
        if j == len(block) or block[j] != key:
            raise KeyError(key)
        del block[j]
        self._len -= 1
        if block:
            self._maxes[i] = block[-1]
        else:
            del self._blocks[i]
            del self._maxes[i]

    def irange(self, low: bytes, high: bytes, *, reverse: bool = False) -> Iterator[bytes]:
        """The keys k with low <= k < high, ascending (or descending with `reverse`)."""
        return self._backward(low, high) if reverse else self._forward(low, high)

    def _forward(self, low: bytes, high: bytes) -> Iterator[bytes]:
        i = bisect_left(self._maxes, low)
        j = bisect_left(self._blocks[i], low) if i < len(self._blocks) else 0
        while i < len(self._blocks):
            block = self._blocks[i]
            for key in block[j:]:
                if key >= high:
                    return
                yield key
            i, j = i + 1, 0

    def _backward(self, low: bytes, high: bytes) -> Iterator[bytes]:
        i = bisect_left(self._maxes, high)
        if i == len(self._blocks):
            i -= 1
            j = len(self._blocks[i]) if i >= 0 else 0
        else:
            j = bisect_left(self._blocks[i], high)
        while i >= 0:
            block = self._blocks[i]
            for key in reversed(block[:j]):
                if key < low:
                    return
                yield key
            i -= 1
            j = len(self._blocks[i]) if i >= 0 else 0
