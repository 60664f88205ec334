"""Upstream requests shared by every caller of a single-flight (shared.aio.single_flight).

A shared request is made with the first caller's headers, so it must carry nothing that makes
its answer that caller's own: `shared_headers` drops the conditionals (a 304 to the first
caller's If-None-Match would reach every caller that joined, with an empty body none of them
asked for); each caller's own conditionals are then evaluated against the shared answer's ETag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from multidict import CIMultiDict

#: Request headers that make an answer depend on what one client already holds (RFC 9110 §13).
CONDITIONALS: Final = frozenset({"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"})


def shared_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """`headers` for an upstream request made on behalf of every caller of a flight."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in CONDITIONALS)
