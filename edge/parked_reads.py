"""Catch-up reads the cache cannot answer, parked on the fast lane until the shared upstream
read returns.

A walk of a stream ends with a read that reaches the tail (and one made of a single chunk is
nothing else): such an answer can change at any moment, so it is never cached, only shared by
every concurrent reader of the same target (edge.reads' catch-up flights). Through aiohttp's
handlers each of those readers cost a Request, a handler task and a Response for one shared
answer. Parked on the lane instead, a reader waits as one entry in a dict and, when the flight
returns a 200, every parked reader gets the same rendered head and the same body object: one
socket write each. Anything else (an error, a 304-able or redirected answer, a failed flight) is
given back to the handlers, which produce that answer as they always did.

The flights are the handlers' own (same keys, edge.long_poll_plan.flight_key), so lane and
handler readers share them; each parked reader is a waiter of its flight until it is answered or
its connection is lost, and the last waiter to leave cancels the upstream read.
"""

from __future__ import annotations

import asyncio

from aiohttp.http_parser import RawRequestMessage

from plugin_streams.edge.long_poll_plan import FlightKey
from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.reads import EdgeReads
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.upstream import Reply, end_to_end
from plugin_streams.shared.aio.fast_lane import FastConnection
from plugin_streams.shared.aio.rendered import Rendered
from plugin_streams.shared.offsets import Offset

_ANSWERED = object()  # what a flight's clients give for a client no longer among them


class _Flight:
    """The readers parked on one shared upstream read."""

    __slots__ = ("clients", "future", "key")

    def __init__(self, key: FlightKey, future: asyncio.Future[Reply]) -> None:
        self.key = key
        self.future = future
        self.clients: dict[FastConnection, None] = {}  # insertion-ordered; O(1) removal


class ParkedReads:
    def __init__(self, reads: EdgeReads, metrics: EdgeMetrics) -> None:
        self.reads = reads
        self.metrics = metrics
        self._flights: dict[FlightKey, _Flight] = {}
        self._answered = metrics.fast_lane.labels("catch_up")

    def park(
        self, message: RawRequestMessage, conn: FastConnection, scope: ReadScope, offset: Offset | None, *, start: bool
    ) -> bool:
        """Park a catch-up read of `message.path` (from `offset`; `start`: from the start) on its
        shared upstream read; False (declined) while the edge is stopping."""
        reads = self.reads
        if reads.stopped:
            return False
        query_string = message.path.partition("?")[2]  # plain targets only: nothing to decode
        key = reads.planner.flight_key(scope, query_string)
        work = reads.catch_up_work(message.headers, scope, offset, message.path, start=start)
        future = reads.catch_up_flights.join(key, work)
        flight = self._flights.get(key)
        if flight is None or flight.future is not future:  # (a flight everyone left: a new one)
            flight = self._flights[key] = _Flight(key, future)
            future.add_done_callback(lambda _: self._answer(flight))
        flight.clients[conn] = None
        conn.park(message, lambda: self._left(flight, conn))
        return True

    def _left(self, flight: _Flight, conn: FastConnection) -> None:
        """A parked reader's connection was lost: it no longer keeps the upstream read going."""
        if flight.clients.pop(conn, _ANSWERED) is _ANSWERED:
            return  # its answer was on the way
        self.reads.catch_up_flights.leave(flight.key, flight.future)

    def _answer(self, flight: _Flight) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        clients, flight.clients = flight.clients, {}
        future = flight.future
        reply = None if future.cancelled() or future.exception() is not None else future.result()
        rendered = _rendered(reply) if reply is not None else None
        if rendered is None or reply is None:
            for conn in clients:
                conn.release_parked()  # the handlers know how to answer (or to retry) this
            return
        head = rendered.head()
        for conn in clients:
            if not conn.closed:
                conn.answer_parked(head, reply.body)
                self._answered.inc()


def _rendered(reply: Reply) -> Rendered | None:
    """The head every parked reader gets for `reply`, as edge.reads.respond would send it; None
    if that answer is not a plain 200."""
    if reply.status != 200:
        return None
    try:
        return Rendered(200, end_to_end(reply.headers), len(reply.body))
    except ValueError:
        return None  # a header the lane cannot render: the handlers answer
