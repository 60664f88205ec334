#!/usr/bin/env python3
"""Warn about product modules over 400 lines: past that size a module usually holds two concepts.

A warning, not a failure: a long module can be the right shape (a table, one state machine), and
the warning is the prompt to decide so. Prints one line per module over the limit, largest first.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 400
PRODUCT = ("origin", "edge", "shared", "plugin_streams")


def oversized(root: Path) -> list[tuple[int, Path]]:
    found = []
    for package in PRODUCT:
        for path in (root / package).rglob("*.py"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > LIMIT:
                found.append((lines, path.relative_to(root)))
    return sorted(found, reverse=True)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    for lines, path in oversized(root):
        print(f"warning: {path} has {lines} lines (over {LIMIT}): does it hold more than one concept?", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
