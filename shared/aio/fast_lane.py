"""A fast lane under aiohttp: answer some requests from memory before aiohttp builds a Request.

aiohttp spends most of a small response's time on its own request and response machinery
(Request object, router, middlewares, header building, the handler task). For answers that are
already rendered as bytes (a cached chunk, a shared long-poll answer) that is pure overhead, so
the connection protocol offers each parsed request to a `Lane` first, while the connection is
idle. The lane either takes it (writes rendered bytes now, or parks the connection until its
answer is known) or declines, and then aiohttp handles it exactly as before.

Order on a keep-alive connection is kept: the lane only sees a request when nothing is queued
or in progress before it, and while a connection is parked, later requests wait apart from
aiohttp's queue (its loop would answer them first) and go back to it, in order, once the parked
answer is out. A parked request has no handler task for a lost connection to cancel, so the lane
gives `park` a callback, called if the connection is lost first.

"Nothing in progress" is tracked here rather than read from aiohttp's waiter: after a response
aiohttp's request loop resumes one loop iteration later, and under load a keep-alive client's
next request often arrives in between. Judged by the waiter alone, such a connection would
never be idle again and every later request would take the slow path.

Pipelining: aiohttp stops reading a connection once 32 requests are queued (its parser keeps
the rest of what it read) and its request loop refills and resumes as it drains the queue. When
the lane drains the queue instead, it does the same refill (`_offer`), or a client pipelining
more than 32 lane requests would wait forever for the rest of its answers. And the lane stops
taking requests while the client does not read its answers (writing paused), as aiohttp's
handlers wait for it: otherwise one client could pipeline answers without bound.

Bodies: a lane with a `body_limit` (a positive int attribute) is also offered requests whose
whole body, at most that many bytes, arrived with them (a small POST in one packet): aiohttp
has already parsed it into the request's payload, and `conn.body` holds it while the lane
decides. A body still on the way, or a larger one, is aiohttp's. A taken body is read out of
its payload, as a handler would, so aiohttp's flow control sees it consumed.

The lane works on aiohttp internals (`INTERNALS`); a server whose aiohttp lacks one of them
runs without the lane and says so in its log, rather than wedging connections.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler

from plugin_streams.shared.aio.observe import OBSERVER, Observer

logger = logging.getLogger(__name__)


class Lane(Protocol):
    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        """True if the request was taken: answered with `conn.send` or parked with `conn.park`."""


LANE: Final = web.AppKey("fast_lane", Lane)
#: Extra keep-alive time granted to a parked connection (the lane answers it well before).
PARKED_GRACE: Final = 120.0

#: What FastConnection reads or calls inside aiohttp, checked once when the server is made.
INTERNALS: Final = {
    RequestHandler: (
        "_messages",  # the queue of parsed requests aiohttp's loop takes from
        "_waiter",  # the future aiohttp's loop waits on while the queue is empty
        "_handle_request",  # wrapped to know when aiohttp is busy with a request
        "_parser",
        "_max_msg_queue_size",  # where aiohttp (and its parser) stop taking requests...
        "_buffer_paused",  # ...and pause reading...
        "_pause_reading_for_buffer",
        "_resume_reading_if_drained",  # ...and aiohttp's own refill and resume once it drained
        "_keepalive",
        "_keepalive_handle",
        "_keepalive_timeout",
        "_next_keepalive_close_time",
        "_process_keepalive",
        "_close",
        "_loop",
        "transport",
        "writing_paused",  # the client is not reading what is written
    ),
    HttpRequestParser: ("message_consumed",),  # frees the parser's slot for a request taken
    StreamReader: ("_eof", "_buffer", "_buffer_offset"),  # a body wholly arrived, peeked at
}
#: Set on each web.Server (FastLaneServer copies them).
SERVER_INTERNALS: Final = ("request_handler", "request_factory", "handler_cancellation", "_kwargs", "_loop")


def missing_internals(server: web.Server) -> list[str]:
    missing = [f"{cls.__name__}.{name}" for cls, names in INTERNALS.items() for name in names if not hasattr(cls, name)]
    missing += [f"Server.{name}" for name in SERVER_INTERNALS if not hasattr(server, name)]
    return missing


class FastConnection(RequestHandler):
    """aiohttp's connection protocol, offering each request to the lane while it is idle."""

    __slots__ = (
        "_answering",
        "_behind",
        "_body_limit",
        "_handling",
        "_lane",
        "_observer",
        "_offering",
        "_on_lost",
        "_parked",
        "_remote",
        "_started",
        "body",
    )

    def __init__(self, manager: web.Server, lane: Lane, observer: Observer | None = None, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._lane = lane
        self._observer = observer
        self._parked: RawRequestMessage | None = None
        self._on_lost: Callable[[], None] | None = None  # the lane's, for the parked request
        self._behind: deque[Any] = deque()  # requests behind the parked one, out of aiohttp's sight
        self._handling = False  # aiohttp has taken a request and not yet written all its answer
        self._offering = False  # inside _offer (aiohttp's refill calls data_received back)
        self._answering: RawRequestMessage | None = None  # the request `send` answers
        self._started = 0.0  # when it was offered (a parked one: its wait counts too)
        self._remote: str | None = None
        limit = getattr(lane, "body_limit", 0)
        self._body_limit = limit if type(limit) is int and limit > 0 else 0  # 0: bodiless requests only
        self.body = b""  # the whole body of the request being offered

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
        if self._parked is None and (self._handling or self._messages or (waiter is not None and waiter.done())):
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
        if self._offering:
            return  # aiohttp's refill, called from the pass below: that pass offers what it parsed
        self._offering = True
        try:
            while self._offer_queued() and self._buffer_paused:
                # The lane emptied a full queue: refill it from what the parser kept and resume
                # reading, as aiohttp's loop does when it drains the queue itself.
                self._resume_reading_if_drained()
                if not self._messages:
                    break
        finally:
            self._offering = False
        if self._parked is not None:
            self._hold_behind()
            return
        waiter = self._waiter
        if self._messages and self._parked is None and waiter is not None and not waiter.done():
            waiter.set_result(None)  # the rest is aiohttp's

    def _offer_queued(self) -> bool:
        """Offer queued requests in order until one is declined or parked; True if it took them all."""
        messages = self._messages
        lane = self._lane
        while messages and self._parked is None and self.transport is not None:
            if self.writing_paused:
                # The client is not reading its answers: the rest are aiohttp's, whose handlers
                # wait for the client (and whose full queue stops reading), where the lane would
                # go on answering whatever the client sends.
                return False
            message, payload = messages[0]
            if type(message) is not RawRequestMessage or message.upgrade:
                return False  # a parse error or an upgrade: only aiohttp knows what follows
            body = b"" if payload is EMPTY_PAYLOAD else self._whole_body(payload)
            if body is None:
                return False  # a body still arriving, or too big for the lane
            messages.popleft()
            self._answering = message
            self.body = body
            self._started = time.perf_counter()
            try:
                taken = lane.take(message, self)
            finally:
                self._answering = None
                self.body = b""
            if not taken:
                messages.appendleft((message, payload))
                return False
            if payload is not EMPTY_PAYLOAD:
                payload.read_nowait()  # consumed, as a handler reads it (and reading resumes if it paused)
            if self._parser is not None:
                # Taken off the queue: its parser slot is free (a parked one given back to
                # aiohttp is queued again without one, which only lets the queue hold one more).
                self._parser.message_consumed()
        return not messages and self._parked is None and self.transport is not None

    def _whole_body(self, payload: Any) -> bytes | None:
        """The request's body if all of it is in its payload and the lane takes bodies that big."""
        limit = self._body_limit
        if not limit or type(payload) is not StreamReader or not payload._eof or payload.exception() is not None:
            return None
        if payload.total_bytes > limit or payload._buffer_offset:
            return None
        buffer = payload._buffer
        if len(buffer) == 1:
            return buffer[0]
        return b"".join(buffer)

    def _hold_behind(self) -> None:
        """Keep requests behind the parked one from aiohttp's loop, which would answer them first.

        (It takes from its queue whenever it comes back from a previous answer, without waiting
        to be woken.) Held, they still count in the parser's queue, so reading pauses as it
        would with them in aiohttp's.
        """
        messages = self._messages
        if messages:
            self._behind.extend(messages)
            messages.clear()
        if len(self._behind) >= self._max_msg_queue_size and not self._buffer_paused:
            self._pause_reading_for_buffer()

    def _unhold(self) -> None:
        behind = self._behind
        if behind:
            self._messages.extendleft(reversed(behind))
            behind.clear()

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def send(self, data: bytes, body: bytes = b"") -> None:
        """Answer the request being offered with a whole rendered response (head, then body)."""
        self._write(self._answering, data, body)

    def _write(self, message: RawRequestMessage | None, data: bytes, body: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        if body:
            transport.writelines((data, body))
        else:
            transport.write(data)
        self._kept_alive(self._keepalive_timeout)
        if self._observer is not None and message is not None:
            # Counted and logged like the middleware does for aiohttp's answers; a rendered
            # head starts "HTTP/1.1 NNN ".
            self._observer.record(
                message.method,
                message.url,
                int(data[9:12]),
                len(body),
                time.perf_counter() - self._started,
                self._peer(),
            )

    def _peer(self) -> str | None:
        # What aiohttp's Request.remote says for a TCP peer.
        if self._remote is None and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            self._remote = str(peer[0]) if isinstance(peer, (list, tuple)) else None
        return self._remote

    def park(self, message: RawRequestMessage, on_lost: Callable[[], None] | None = None) -> None:
        """The answer comes later (`answer_parked`); requests behind this one wait until then.

        If the connection is lost first, `on_lost` is called: no handler task waits for this
        answer, so nothing else would tell whoever is working on it that nobody needs it now.
        """
        self._parked = message
        self._on_lost = on_lost
        self._kept_alive(self._keepalive_timeout + PARKED_GRACE)

    def answer_parked(self, data: bytes, body: bytes = b"") -> None:
        message, self._parked = self._parked, None
        self._on_lost = None
        self._write(message, data, body)
        self._unhold()
        if self._close:
            super().close()  # the server is stopping: this was the last answer
        else:
            self._offer()

    def connection_lost(self, exc: BaseException | None) -> None:
        on_lost, self._on_lost = self._on_lost, None
        self._parked = None
        try:
            super().connection_lost(exc)
        finally:
            if on_lost is not None:
                on_lost()

    def close(self) -> None:
        if self._parked is not None:
            # Stopping: the parked request is answered first (the app's shutdown settles it).
            self._close = True
            return
        super().close()

    def release_parked(self) -> None:
        """Give the parked request back to aiohttp, as if the lane had declined it."""
        message, self._parked = self._parked, None
        self._on_lost = None
        self._unhold()
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

    def __init__(self, server: web.Server, lane: Lane, observer: Observer | None = None) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self.lane = lane
        self.observer = observer

    def __call__(self) -> RequestHandler:
        return FastConnection(self, self.lane, self.observer, loop=self._loop, **self._kwargs)


class FastLaneRunner(web.AppRunner):
    """An AppRunner whose connections offer requests to the app's `LANE` first."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        missing = missing_internals(server)
        if missing:
            missing_text = ", ".join(missing)
            logger.warning("fast lane off: this aiohttp lacks %s; every request takes the ordinary way", missing_text)
            return server
        return FastLaneServer(server, self.app[LANE], self.app.get(OBSERVER))


def runner_for(app: web.Application, **kwargs: Any) -> web.AppRunner:
    return FastLaneRunner(app, **kwargs) if LANE in app else web.AppRunner(app, **kwargs)
