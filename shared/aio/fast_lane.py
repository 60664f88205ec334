"""A fast lane under aiohttp: answer some requests from memory before aiohttp builds a Request.

aiohttp spends most of a small response's time on its own request and response machinery
(Request object, router, middlewares, header building, the handler task). For answers that are
already rendered as bytes (a cached chunk, a shared long-poll answer) that is pure overhead, so
the connection protocol offers each parsed request to a `Lane` first, while the connection is
idle. The lane either takes it (writes rendered bytes now, or parks the connection until its
answer is known) or declines, and then aiohttp handles it exactly as before.

Order on a keep-alive connection is kept: the lane only sees a request when nothing is queued
or in progress before it, and while a connection is parked, later requests wait in aiohttp's
own queue and are handed to aiohttp once the parked answer is out.

"Nothing in progress" is tracked here rather than read from aiohttp's waiter: after a response
aiohttp's request loop resumes one loop iteration later, and under load a keep-alive client's
next request often arrives in between. Judged by the waiter alone, such a connection would
never be idle again and every later request would take the slow path.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler


class Lane(Protocol):
    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        """True if the request was taken: answered with `conn.send` or parked with `conn.park`."""


LANE: Final = web.AppKey("fast_lane", Lane)
#: Extra keep-alive time granted to a parked connection (the lane answers it well before).
PARKED_GRACE: Final = 120.0


class FastConnection(RequestHandler):
    """aiohttp's connection protocol, offering each request to the lane while it is idle."""

    __slots__ = ("_handling", "_lane", "_parked")

    def __init__(self, manager: web.Server, lane: Lane, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._lane = lane
        self._parked: RawRequestMessage | None = None
        self._handling = False  # aiohttp has taken a request and not yet written all its answer

    def _handle_request(self, *args: Any) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        # Called by aiohttp's loop as it takes a request off its queue, before the handler's
        # task first runs (on Python 3.11 that is a loop iteration later).
        self._handling = True
        return self._handle_then_free(*args)

    async def _handle_then_free(self, *args: Any) -> tuple[web.StreamResponse, bool]:
        try:
            return await super()._handle_request(*args)
        finally:
            self._handling = False  # the answer is written: the lane may answer what follows

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if self._handling or self._messages or (waiter is not None and waiter.done()):
            super().data_received(data)  # aiohttp has a request before this one: it keeps the order
            return
        # Nothing before this request: parse without waking aiohttp, so the lane sees it first.
        # (A None waiter means aiohttp's loop has yet to come back for its next request; when
        # it does, it finds whatever the lane left in the queue.)
        self._waiter = None
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        self._offer()

    def _offer(self) -> None:
        messages = self._messages
        while messages and self._parked is None and self.transport is not None:
            message, payload = messages[0]
            if payload is not EMPTY_PAYLOAD or type(message) is not RawRequestMessage:
                break
            messages.popleft()
            if not self._lane.take(message, self):
                messages.appendleft((message, payload))
                break
            if self._parser is not None:
                self._parser.message_consumed()
        waiter = self._waiter
        if messages and self._parked is None and waiter is not None and not waiter.done():
            waiter.set_result(None)  # the rest is aiohttp's

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def send(self, data: bytes, body: bytes = b"") -> None:
        """Write a whole rendered response (head, then body) and keep the connection alive."""
        transport = self.transport
        if transport is None:
            return
        if body:
            transport.writelines((data, body))
        else:
            transport.write(data)
        self._kept_alive(self._keepalive_timeout)

    def park(self, message: RawRequestMessage) -> None:
        """The answer comes later (`answer_parked`); requests behind this one wait until then."""
        self._parked = message
        self._kept_alive(self._keepalive_timeout + PARKED_GRACE)

    def answer_parked(self, data: bytes, body: bytes = b"") -> None:
        self._parked = None
        self.send(data, body)
        if self._close:
            super().close()  # the server is stopping: this was the last answer
        else:
            self._offer()

    def close(self) -> None:
        if self._parked is not None:
            # Stopping: the parked request is answered first (the app's shutdown settles it).
            self._close = True
            return
        super().close()

    def release_parked(self) -> None:
        """Give the parked request back to aiohttp, as if the lane had declined it."""
        message, self._parked = self._parked, None
        if message is not None and self.transport is not None:
            self._messages.appendleft((message, EMPTY_PAYLOAD))
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _kept_alive(self, timeout: float) -> None:
        # What aiohttp's request loop does after each response, so idle timeouts stay right.
        loop = self._loop
        self._keepalive = True
        self._next_keepalive_close_time = loop.time() + timeout
        if self._keepalive_handle is None:
            self._keepalive_handle = loop.call_at(self._next_keepalive_close_time, self._process_keepalive)


class FastLaneServer(web.Server):
    """aiohttp's low-level server, making FastConnection protocols."""

    def __init__(self, server: web.Server, lane: Lane) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self.lane = lane

    def __call__(self) -> RequestHandler:
        return FastConnection(self, self.lane, loop=self._loop, **self._kwargs)


class FastLaneRunner(web.AppRunner):
    """An AppRunner whose connections offer requests to the app's `LANE` first."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return FastLaneServer(server, self.app[LANE])


def runner_for(app: web.Application, **kwargs: Any) -> web.AppRunner:
    return FastLaneRunner(app, **kwargs) if LANE in app else web.AppRunner(app, **kwargs)
