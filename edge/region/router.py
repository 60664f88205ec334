"""Requests at a regional edge: reads from the local replica, writes to the origin.

- GET and HEAD of a stream the replica serves are answered by the origin's own handlers over
  the local replica (same headers, chunks, cursors, long-poll and SSE, woken by replication).
  Anything else goes the ordinary edge way (cache, coalescing, origin), and a GET of a stream
  the region does not hold starts replicating it.
- PUT, POST and DELETE go to the origin (the edge's pass-through); once acknowledged, the
  replica catches up to the offset the origin returned before the client gets its answer, so
  the client reads its own write here. While the link is down, writes fail at once with 503
  and a jittered Retry-After; a write in flight when the link drops gets the same answer (its
  fate is unknown: idempotent producer headers make the client's retry exactly-once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from plugin_streams.edge.region.changes import ChangeFollower
from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.upstream import unavailable
from plugin_streams.origin.embed import LocalReads, StreamState
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.offsets import parse_offset

logger = logging.getLogger(__name__)
Forward = Callable[[web.Request, str], Awaitable[web.Response]]

#: How long an acknowledged write waits for the replica to hold it before answering anyway.
READ_YOUR_WRITE_WAIT = 10.0


class RegionRouter:
    def __init__(
        self,
        name: str,
        replica: Replica,
        changes: ChangeFollower,
        local: LocalReads,
        link: Link,
        metrics: RegionMetrics,
        policy: AccessPolicy,
    ) -> None:
        self.name = name
        self.replica = replica
        self.changes = changes
        self.local = local
        self.link = link
        self.metrics = metrics
        self.policy = policy

    async def read(self, request: web.Request, path: str) -> web.StreamResponse | None:
        """Answer a GET or HEAD from the replica, or None: let the edge ask the origin."""
        if self.changes.access_control and not self.policy.enabled:
            return None  # the origin checks credentials and this edge can't: never serve locally
        state = self.replica.serving(path)
        if state is None:
            if not self.link.is_up:
                raise unavailable(f"region {self.name} does not hold this stream and cannot reach the origin")
            if request.method == "GET":
                spawn(self.replica.replicate_on_read(path), name="replicate-on-read")
            return None
        self.metrics.local_reads.inc()
        if request.method == "HEAD":
            return await self.local.head(request, path)
        self.replica.note_read(path, state)
        return await self.local.get(request, path)

    async def write(self, request: web.Request, path: str, forward: Forward) -> web.Response:
        if not self.link.is_up:
            self.metrics.refused_writes.inc()
            raise unavailable(f"region {self.name} cannot reach the origin")
        response = await self._unless_link_drops(forward(request, path))
        if response.status < 300:
            try:
                async with asyncio.timeout(READ_YOUR_WRITE_WAIT):
                    await self._catch_up(request.method, path, response)
            except TimeoutError:
                logger.warning("replica did not catch up with a write to %r in %.0f s", path, READ_YOUR_WRITE_WAIT)
            except ProtocolError as exc:
                logger.warning("replica could not follow a write to %r: %s", path, exc)
        return response

    async def _unless_link_drops(self, work: Awaitable[web.Response]) -> web.Response:
        forwarding: asyncio.Task[web.Response] = spawn(_awaited(work), name="region-write")
        link_down = spawn(self.link.wait_down(), name="region-link-watch")
        try:
            await asyncio.wait((forwarding, link_down), return_when=asyncio.FIRST_COMPLETED)
        finally:
            link_down.cancel()
        if forwarding.done():
            return forwarding.result()
        forwarding.cancel()
        self.metrics.refused_writes.inc()
        raise unavailable(f"region {self.name} lost the origin while writing; retry")

    async def _catch_up(self, method: str, path: str, response: web.Response) -> None:
        replica = self.replica
        if method == "DELETE":
            state = replica.holding(path)
            if state is not None:
                await replica.drop(state)
            return
        next_offset = response.headers.get(h.STREAM_NEXT_OFFSET)
        until = parse_offset(next_offset) if next_offset else None
        closed = h.STREAM_CLOSED in response.headers
        state = replica.holding(path)
        if method == "POST" and state is not None and (until is None or _minted_by(state, until.generation)):
            await replica.wait_for(state, until, closed)
        elif replica.wanted(path) or state is not None:
            await replica.ensure(path, until=until, closed=closed)


def _minted_by(state: StreamState, generation: int) -> bool:
    return any(member.generation == generation for member, _ in state.chain())


async def _awaited(work: Awaitable[web.Response]) -> web.Response:
    return await work
