"""Stream paths in name order, so a listing by prefix starts at its first name (bisect).

A dict from path to value that also keeps its keys sorted: every way the registry (or a
regional replica) adds or removes a path goes through `[]=`, `del` or `pop`, so the order can
never drift from the dict. Insertion and removal cost a bisect and a list move, which stays
small next to creating or deleting a stream.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any, TypeVar

V = TypeVar("V")
_MISSING: Any = object()


class SortedPaths(dict[str, V]):
    def __init__(self) -> None:
        super().__init__()
        self._sorted: list[str] = []

    def __setitem__(self, path: str, value: V) -> None:
        if path not in self:
            insort(self._sorted, path)
        super().__setitem__(path, value)

    def __delitem__(self, path: str) -> None:
        super().__delitem__(path)
        del self._sorted[bisect_left(self._sorted, path)]

    def pop(self, path: str, default: Any = _MISSING) -> Any:
        if path in self:
            value = self[path]
            del self[path]
            return value
        if default is _MISSING:
            raise KeyError(path)
        return default

    def clear(self) -> None:
        super().clear()
        self._sorted.clear()

    def setdefault(self, path: str, default: Any = None) -> Any:
        if path not in self:
            self[path] = default
        return self[path]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for path, value in dict(*args, **kwargs).items():
            self[path] = value

    def popitem(self) -> tuple[str, V]:
        path, value = super().popitem()
        del self._sorted[bisect_left(self._sorted, path)]
        return path, value

    def names_from(self, first: str) -> Iterator[str]:
        """Paths >= `first` in name order (a path removed meanwhile may still be yielded)."""
        sorted_paths = self._sorted
        i = bisect_left(sorted_paths, first)
        while i < len(sorted_paths):
            path = sorted_paths[i]
            yield path
            # Removals before this one shift the list: find our place again by value.
            if i >= len(sorted_paths) or sorted_paths[i] != path:
                i = bisect_left(sorted_paths, path)
                if i < len(sorted_paths) and sorted_paths[i] == path:
                    i += 1
                continue
            i += 1
