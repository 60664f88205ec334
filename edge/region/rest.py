"""REST API requests at a regional edge: reads and tails from the local replica, writes to the origin.

The REST API (`/streams/api/v1/streams...`) names the protocol's streams (a stream named N is
`/v1/stream/N`), so the replica holds both at once, and the rules are the protocol's
(edge.region.router):

- `GET .../streams/:name` (describe), `.../:name/read` and `.../:name/tail` (SSE and long-poll)
  of a stream the replica serves are answered by the origin's own REST handlers over the local
  replica (same pages, offsets, ETags and Cache-Control; tails woken by replication). A read or
  tail of a stream the region does not hold goes the ordinary edge way and starts replicating
  it; a describe does not (like HEAD, it asks for no data). The listing (`GET .../streams`) is
  always the origin's: a replica holds only the streams it replicates.
- Create, append (closing included) and delete go to the origin; once acknowledged the replica
  catches up to what the origin answered before the client gets its answer (edge.region.writes).

Errors are raised as ProtocolError, which the caller words as REST errors (`{"error": ...}`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from plugin_streams.edge.region.gate import ReadGate
from plugin_streams.edge.region.writes import Acknowledged, RegionWrites, WriteKind
from plugin_streams.origin.embed import LocalRest
from plugin_streams.shared import headers as h
from plugin_streams.shared.offsets import Offset, parse_offset
from plugin_streams.shared.paths import validate_path

#: A REST request forwarded to the origin as it is (the edge's pass-through).
Forward = Callable[[web.Request], Awaitable[web.Response]]
APPEND: Final = "append"
#: `read?before=`: the messages before an offset (the live page's earlier pages). The embedded
#: REST API does not offer it, so the origin answers those reads.
BACKWARDS: Final = "before"


class RegionRest:
    def __init__(self, gate: ReadGate, writes: RegionWrites, local: LocalRest) -> None:
        self.gate = gate
        self.writes = writes
        self.local = local

    async def read(self, request: web.Request, name: str, action: str | None) -> web.StreamResponse | None:
        """Answer a REST GET of stream `name` from the replica, or None: let the edge answer it.

        `action` is the path's last segment after the name: None (describe), "read" or "tail".
        """
        if request.method != "GET" or action not in (None, "read", "tail"):
            return None
        if action == "read" and BACKWARDS in request.query:
            return None
        name = validate_path(name)
        describe = action is None
        state = self.gate.local(name, replicate_on_miss=not describe)
        if state is None:
            return None
        if describe:
            return await self.local.describe(request, name)
        self.gate.note_read(name, state)
        if action == "read":
            return await self.local.read(request, name)
        return await self.local.tail(request, name)

    async def write(self, request: web.Request, name: str | None, forward: Forward) -> web.Response:
        """Forward a REST create, append, close or delete; once acknowledged, read it back here.

        `name`: the stream the request names (for a create, the one its JSON body names), or
        None when unknown: then the write is forwarded but not waited for.
        """
        if name is not None:
            name = validate_path(name)
        return await self.writes.write(lambda: forward(request), lambda r: acknowledged(request, name, r))


def acknowledged(request: web.Request, name: str | None, response: web.Response) -> Acknowledged | None:
    """What a REST write's answer says: its kind, the next offset and closure.

    An append's answer carries the next offset as a header and closure in its body; a create's
    answer is the stream's description (`next_offset`, `closed`).
    """
    if name is None:
        return None
    if request.method == "DELETE":
        return Acknowledged(name, WriteKind.DELETE)
    if request.method != "POST":
        return None
    body = _json_object(response)
    closed = body.get("closed") is True
    if request.rel_url.path_safe.rpartition("/")[2] == APPEND:
        return Acknowledged(name, WriteKind.APPEND, _offset(response.headers.get(h.STREAM_NEXT_OFFSET)), closed)
    return Acknowledged(name, WriteKind.CREATE, _offset(body.get("next_offset")), closed)


def _offset(value: object) -> Offset | None:
    return parse_offset(value) if isinstance(value, str) and value else None


def _json_object(response: web.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it has none (then the replica waits to be caught up)."""
    if not isinstance(response.body, bytes):
        return {}
    try:
        body = json.loads(response.body)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
