"""Knowing at once when a client leaves while its live read waits.

aiohttp notices a closed connection (its protocol's `connection_lost`) but, unless the whole
server runs with `handler_cancellation`, tells a handler only at its next write. A long-poll
waiting 30 s, or an SSE response between keep-alives, would keep its live slot and its gauge
for that long after the client went. Cancelling every handler on disconnect is not wanted
either: a write half way through its commit must finish and be logged like any other.

So a handler marks the part of its work that may be abandoned:

    with leaves_with_client(request):
        await wait_for_data(...)

and if the connection is lost meanwhile (shared.aio.guard reports it), that task is cancelled
there, and the cancellation comes out of the block as `ClientGone` (a ConnectionResetError),
like asyncio.timeout turns its cancellation into TimeoutError. Outside the block nothing
changes. Served without the guard (an in-process test server), the block never fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from aiohttp import web

#: The status logged for a request whose client left before its answer (nginx's convention).
CLIENT_CLOSED_REQUEST: Final = 499


class ClientGone(ConnectionResetError):
    """The client closed its connection while its request was being answered."""


class Departures:
    """Tasks to cancel when one connection is lost; held by that connection's guard."""

    __slots__ = ("gone", "tasks")

    def __init__(self) -> None:
        self.gone = False
        self.tasks: set[asyncio.Task[object]] = set()

    def lost(self) -> None:
        self.gone = True
        for task in self.tasks:
            task.cancel(msg=_MESSAGE)


_MESSAGE: Final = "client gone"
#: The live connections' Departures, by their aiohttp protocol (what `request.protocol` is).
_by_protocol: dict[object, Departures] = {}


def register(protocol: object) -> Departures:
    departures = _by_protocol[protocol] = Departures()
    return departures


def unregister(protocol: object) -> None:
    departures = _by_protocol.pop(protocol, None)
    if departures is not None:
        departures.lost()


@contextmanager
def leaves_with_client(request: web.BaseRequest) -> Iterator[None]:
    """Work inside ends (with ClientGone) as soon as the request's connection is lost."""
    departures = _by_protocol.get(request.protocol)
    task = asyncio.current_task()
    if departures is None or task is None:
        if request.transport is None:
            raise ClientGone("client gone")
        yield
        return
    if departures.gone:
        raise ClientGone("client gone")
    departures.tasks.add(task)
    try:
        yield
    except asyncio.CancelledError:
        # Ours only if the connection is gone and nobody else also asked to cancel this task.
        if departures.gone and task.uncancel() == 0:
            raise ClientGone("client gone") from None
        raise
    finally:
        departures.tasks.discard(task)
