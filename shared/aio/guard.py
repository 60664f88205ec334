"""A guard around each connection's protocol: timeouts for slow requests, and departures.

aiohttp bounds an idle keep-alive connection (its `keepalive_timeout`, which serve() sets to the
idle timeout) but nothing else: a client sending its request head a byte at a time, or a body
that stops arriving, or a connection opened and left silent, is held for free. The guard sits
between the transport and aiohttp's protocol (whatever class the runner makes, the fast lane's
included), sees every byte arrive, and enforces:

- header timeout: a request head must be complete within `header` seconds of its first byte,
  and a new connection must send its first head within `header` seconds;
- body timeout: while a request body is arriving, `body` seconds without a byte end it. Time
  the server itself stops reading (flow control: the handler is not reading yet) is not counted;
- idle: aiohttp's keep-alive timeout, between requests.

A head that takes too long gets `408 Request Timeout` and the connection closes. A body that
stalls makes the handler's read fail with 408 (error middleware), and the connection closes
after that answer. The guard also tells shared.aio.departure when the connection is lost, so
live reads waiting on it end at once.

One timer per connection at most, and none while a request is being handled: the deadline is
checked when the timer fires, which reschedules itself if bytes arrived meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from plugin_streams.shared import headers as h
from plugin_streams.shared.aio import departure
from plugin_streams.shared.errors import RequestTimeout

_HEAD_TIMEOUT_REASON: Final = b"request head not received in time\n"
_HEAD_TIMED_OUT: Final = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(_HEAD_TIMEOUT_REASON), _HEAD_TIMEOUT_REASON)
)


@dataclass(frozen=True, slots=True)
class ConnectionTimeouts:
    # Defaults of --header-timeout, --body-timeout and --idle-timeout (the configs repeat them).
    header: float = 10.0  # seconds from a request's first byte (or the connection) to its whole head
    body: float = 30.0  # seconds a request body may go without a byte
    idle: float = 75.0  # seconds an idle keep-alive connection is kept


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, watching the clock between the bytes."""

    __slots__ = (
        "_body",
        "_body_progress",
        "_departures",
        "_head_bytes",
        "_head_since",
        "_inner",
        "_loop",
        "_timeouts",
        "_timer",
    )

    def __init__(self, inner: RequestHandler, timeouts: ConnectionTimeouts, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._timeouts = timeouts
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._head_since: float | None = None  # since when a head is owed (connection, or its first byte)
        self._head_bytes = False  # and whether any of it came
        self._body: StreamReader | None = None  # the request body still arriving, if any
        self._body_progress = 0.0  # when its last byte (or a pause of ours) was
        self._departures = departure.register(inner)

    # -- asyncio.Protocol, forwarded ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        self._head_since = self._loop.time()  # a new connection owes its first head
        self._arm()

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        parsed = inner._request_count
        inner.data_received(data)
        if inner._request_count != parsed:
            self._head_since = None  # a head is complete (the lane may have answered it already)
            self._head_bytes = False
            messages = inner._messages
            if messages:
                payload = messages[-1][1]
                if not payload.is_eof():
                    self._body = payload  # its body is still on the way
        elif self._body is None and self._idle():
            if self._head_since is None:
                self._head_since = self._loop.time()  # the first bytes of a head
            self._head_bytes = True
        if self._body is not None:
            if self._body.is_eof():
                self._body = None
            else:
                self._body_progress = self._loop.time()
        self._arm()

    def eof_received(self) -> None:
        self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._inner.connection_lost(exc)
        finally:
            departure.unregister(self._inner)

    # -- the clock ---------------------------------------------------------------------------

    def _idle(self) -> bool:
        """aiohttp has no request in hand (queued, being handled, or parked by the fast lane)."""
        inner = self._inner
        return (
            not inner._messages
            and not inner._request_in_progress
            and getattr(inner, "_parked", None) is None  # shared.aio.fast_lane's parked request
        )

    def _deadline(self) -> float | None:
        if self._body is not None:
            return self._body_progress + self._timeouts.body
        if self._head_since is not None:
            return self._head_since + self._timeouts.header
        return None

    def _arm(self) -> None:
        deadline = self._deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return  # fires first, then looks again
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        inner = self._inner
        transport = inner.transport
        if transport is None or transport.is_closing():
            return
        now = self._loop.time()
        body = self._body
        if body is not None:
            if body.is_eof():
                self._body = None
            elif inner._reading_paused:
                self._body_progress = now  # we stopped reading, not the client: its clock waits
            elif now >= self._body_progress + self._timeouts.body:
                self._body = None
                self._end_body(body)
                return
        if self._head_since is not None and self._body is None:
            if not self._idle():
                self._head_since = None  # a request got under way after all
            elif now >= self._head_since + self._timeouts.header:
                self._end_head(transport)
                return
        self._arm()

    def _end_head(self, transport: asyncio.BaseTransport) -> None:
        if self._head_bytes:  # a silent connection is simply closed
            transport.write(_HEAD_TIMED_OUT)  # type: ignore[attr-defined]
        self._inner.force_close()  # (closes once the 408, if any, is written)

    def _end_body(self, body: StreamReader) -> None:
        # The handler reading it (now or later) gets a 408 through the error middleware; nothing
        # more is read, and the connection closes after that answer.
        body.set_exception(RequestTimeout("request body stalled", {h.CONNECTION: "close"}))
        body.feed_eof()
        self._inner.close()


def guarded(factory: Any, timeouts: ConnectionTimeouts, loop: asyncio.AbstractEventLoop) -> Any:
    """A protocol factory (for loop.create_server) wrapping each protocol `factory` makes."""

    def make() -> GuardedProtocol:
        return GuardedProtocol(factory(), timeouts, loop)

    return make
