"""Which REST API resource a request path names, as a bounded label: no stream name ever leaves here.

    /streams/api/v1/streams                 streams (list, create)
    /streams/api/v1/streams/<name>          streams (describe, delete)
    /streams/api/v1/streams/<name>/append   append
    /streams/api/v1/streams/<name>/read     read
    /streams/api/v1/streams/<name>/tail     tail (SSE, or long-poll with `mode=long-poll`)

The last segment is the action, as the origin splits it (origin.rest.routes). Request metrics
(shared.aio.observe) and the edge's upstream-error kinds (edge.upstream) read paths through this.
"""

from __future__ import annotations

from typing import Final

REST_PREFIX: Final = "/streams/api/v1"
STREAMS_PATH: Final = REST_PREFIX + "/streams"
ACTIONS: Final = frozenset({"append", "read", "tail"})
#: A REST tail's query parameter choosing its mode: `sse` (the default) or `long-poll`.
QUERY_MODE: Final = "mode"


def rest_resource(path: str) -> str | None:
    """`append`, `read`, `tail` or `streams` for a REST path; None for any other path."""
    if path == STREAMS_PATH or path == STREAMS_PATH + "/":
        return "streams"
    if not path.startswith(STREAMS_PATH + "/"):
        return None
    head, sep, last = path[len(STREAMS_PATH) + 1 :].rpartition("/")
    if sep and head and last in ACTIONS:
        return last
    return "streams"
