"""Writes at a regional edge, for both APIs: forwarded to the origin, then read back here.

The protocol's PUT, POST and DELETE (edge.region.router) and the REST API's create, append,
close and delete (edge.region.rest) all take this one path. While the link is down a write fails
at once with 503 and a jittered Retry-After; a write in flight when the link drops gets the same
answer (its fate is unknown: idempotent producer headers make the client's retry exactly-once).
Once the origin acknowledges it, the replica catches up to what the origin answered (the next
offset, and closure) before the client gets its answer, so the client reads its own write here.
Each API only says what its acknowledgement means: an `Acknowledged`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from plugin_streams.edge.region.link import Link
from plugin_streams.edge.region.metrics import RegionMetrics
from plugin_streams.edge.region.replica import Replica
from plugin_streams.edge.upstream import unavailable
from plugin_streams.origin.embed import StreamState
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.offsets import Offset

logger = logging.getLogger(__name__)

#: How long an acknowledged write waits for the replica to hold it before answering anyway.
READ_YOUR_WRITE_WAIT = 10.0


class WriteKind(enum.Enum):
    CREATE = "create"
    APPEND = "append"  # closing included
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """What the origin's acknowledgement of a write says the replica must hold before answering."""

    path: str
    kind: WriteKind
    #: The stream's next offset after the write; None when the answer does not say (then the
    #: replica waits until it has everything the origin has).
    until: Offset | None = None
    closed: bool = False


#: Sends the write to the origin and returns its answer.
Forward = Callable[[], Awaitable[web.Response]]
#: Reads the origin's answer to a write: what to catch up with, or None when nothing is to be.
Acknowledgement = Callable[[web.Response], Acknowledged | None]


class RegionWrites:
    def __init__(self, name: str, replica: Replica, link: Link, metrics: RegionMetrics) -> None:
        self.name = name
        self.replica = replica
        self.link = link
        self.metrics = metrics

    async def write(self, forward: Forward, acknowledged: Acknowledgement) -> web.Response:
        """Forward a write to the origin; once it succeeds, read it back here before answering."""
        if not self.link.is_up:
            self.metrics.refused_writes.inc()
            raise unavailable(f"region {self.name} cannot reach the origin")
        response = await self._unless_link_drops(forward)
        if response.status < 300:
            await self._read_back(response, acknowledged)
        return response

    async def _read_back(self, response: web.Response, acknowledged: Acknowledgement) -> None:
        try:
            written = acknowledged(response)
            if written is None:
                return
            async with asyncio.timeout(READ_YOUR_WRITE_WAIT):
                await self._catch_up(written)
        except TimeoutError:
            logger.warning("replica did not catch up with a write in %.0f s", READ_YOUR_WRITE_WAIT)
        except ProtocolError as exc:
            logger.warning("replica could not follow a write: %s", exc)

    async def _unless_link_drops(self, forward: Forward) -> web.Response:
        forwarding: asyncio.Task[web.Response] = spawn(_awaited(forward), name="region-write")
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

    async def _catch_up(self, written: Acknowledged) -> None:
        replica = self.replica
        path, until = written.path, written.until
        state = replica.holding(path)
        if written.kind is WriteKind.DELETE:
            if state is not None:
                await replica.drop(state)
            return
        appended = written.kind is WriteKind.APPEND
        if appended and state is not None and (until is None or _minted_by(state, until.generation)):
            await replica.wait_for(state, until, written.closed)
        elif replica.wanted(path) or state is not None:
            # A new stream, or one the origin replaced meanwhile: (re)install it and wait for it.
            await replica.ensure(path, until=until, closed=written.closed)


def _minted_by(state: StreamState, generation: int) -> bool:
    return any(member.generation == generation for member, _ in state.chain())


async def _awaited(forward: Forward) -> web.Response:
    return await forward()
