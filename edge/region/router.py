"""Protocol requests at a regional edge: reads from the local replica, writes to the origin.

- GET and HEAD of a stream the replica serves are answered by the origin's own handlers over
  the local replica (same headers, chunks, cursors, long-poll and SSE, woken by replication).
  Anything else goes the ordinary edge way (cache, coalescing, origin), and a GET of a stream
  the region does not hold starts replicating it (edge.region.gate decides).
- PUT, POST and DELETE go to the origin (the edge's pass-through); once acknowledged, the
  replica catches up to the offset the origin returned before the client gets its answer, so
  the client reads its own write here (edge.region.writes, shared with the REST API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from plugin_streams.edge.region.gate import ReadGate
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.region.writes import Acknowledged, RegionWrites, WriteKind
from plugin_streams.origin.embed import LocalReads
from plugin_streams.shared import headers as h
from plugin_streams.shared.offsets import parse_offset

Forward = Callable[[web.Request, str], Awaitable[web.Response]]
_KINDS = {"PUT": WriteKind.CREATE, "POST": WriteKind.APPEND, "DELETE": WriteKind.DELETE}


class RegionRouter:
    def __init__(self, gate: ReadGate, writes: RegionWrites, local: LocalReads) -> None:
        self.gate = gate
        self.writes = writes
        self.local = local
        self.replica: Replica = gate.replica

    async def read(self, request: web.Request, path: str) -> web.StreamResponse | None:
        """Answer a GET or HEAD from the replica, or None: let the edge ask the origin."""
        head = request.method == "HEAD"
        state = self.gate.local(path, replicate_on_miss=not head)
        if state is None:
            return None
        if head:
            return await self.local.head(request, path)
        self.gate.note_read(path, state)
        return await self.local.get(request, path)

    async def write(self, request: web.Request, path: str, forward: Forward) -> web.Response:
        return await self.writes.write(lambda: forward(request, path), lambda r: acknowledged(request.method, path, r))


def acknowledged(method: str, path: str, response: web.Response) -> Acknowledged | None:
    """What a protocol write's answer says: its kind, the next offset and closure, in headers."""
    kind = _KINDS.get(method)
    if kind is None:
        return None
    next_offset = response.headers.get(h.STREAM_NEXT_OFFSET)
    until = parse_offset(next_offset) if next_offset else None
    return Acknowledged(path, kind, until, closed=h.STREAM_CLOSED in response.headers)
