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


def split_stream_path(path: str) -> tuple[str, str | None] | None:
    """(the stream part, the action or None) of a path under `/streams/`, as given (still
    %2F-escaped when the path is); None for any other path. A last segment `append`, `read` or
    `tail` is always the action."""
    if not path.startswith(STREAMS_PATH + "/"):
        return None
    rest = path[len(STREAMS_PATH) + 1 :]
    head, sep, last = rest.rpartition("/")
    if sep and last in ACTIONS:
        return head, last
    return rest, None


def rest_resource(path: str) -> str | None:
    """`append`, `read`, `tail` or `streams` for a REST path; None for any other path."""
    if path == STREAMS_PATH or path == STREAMS_PATH + "/":
        return "streams"
    split = split_stream_path(path)
    if split is None:
        return None
    return split[1] or "streams"
