"""Live SSE bytes from a hub to every subscriber: rolling rounds, in slices.

A hub's events are numbered. Each subscriber has the number of the first event it has not been
sent. A round writes to every subscriber what it lacks up to the newest event: one write each,
of bytes joined (and chunk-framed) once per starting point, which nearly all subscribers share.
Rounds go in slices of `SLICE` subscribers with a loop iteration between slices, so the origin's
next events, other requests and timers are not held up by a round. Events that arrive during a
round join it for the subscribers it has not reached yet; the next round, which starts at once,
brings them to the ones it had.

So an event waits about one round at most, however long rounds get. Sent one event at a time,
an event arriving just after a round began would wait for that whole round and then its own;
and once a round (10,000 clients, one write each) takes longer than the gap between events,
the wait would grow for as long as the events keep coming.

Nothing waits in memory per subscriber beyond its transport's buffer and the hub's shared
history: a subscriber whose unsent bytes pass its budget is cut off (it resumes from its last
offset), and so is one whose next event has left the history.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from plugin_streams.edge.metrics import EdgeMetrics

HISTORY_BYTES = 256 * 1024  # recent events kept for clients joining, or served, slightly behind
SLICE = 512  # subscribers written between two loop iterations


def chunk_framed(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk, as aiohttp frames a chunked response body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass(frozen=True, slots=True)
class Event:
    start: str
    end: str
    wire: bytes  # data event + control event, exactly as written to every subscriber
    closed: bool
    number: int
    arrived: float  # perf_counter() when the hub made it


class Subscriber:
    """One live client: the hub writes into its transport; the handler only waits for the end."""

    __slots__ = ("buffered", "chunked", "closing", "done", "limit", "next", "overflow", "wake", "write")

    def __init__(self, transport: asyncio.Transport, limit: int, chunked: bool, next_event: int) -> None:
        # The transport's methods, bound once: they are called 100,000 times a second at
        # 10,000 clients and 10 events/s.
        self.write = transport.write
        self.buffered = transport.get_write_buffer_size
        self.closing = transport.is_closing
        self.limit = limit
        self.chunked = chunked
        self.next = next_event  # the number of the first event not yet written
        self.overflow = False
        self.done = False  # the stream closed or the hub ended
        self.wake = asyncio.Event()

    def send(self, data: bytes, closes: bool) -> None:
        if self.closing():
            self.finish()
        elif self.buffered() + len(data) > self.limit:
            self.cut_off()
        else:
            self.write(data)
            if closes:
                self.finish()

    def cut_off(self) -> None:
        self.overflow = True  # once an event is lost, nothing after it may reach this client
        self.wake.set()

    def finish(self) -> None:
        self.done = True
        self.wake.set()


class Delivery:
    def __init__(self, metrics: EdgeMetrics) -> None:
        self.subscribers: set[Subscriber] = set()
        self.history: deque[Event] = deque()
        self.count = 0  # events so far: the number the next one gets
        self._history_bytes = 0
        self._delivered = 0  # events before this one have reached every subscriber
        self._work = asyncio.Event()
        self._metrics = metrics

    def add(self, start: str, end: str, wire: bytes, closed: bool) -> Event:
        event = Event(start, end, wire, closed, self.count, time.perf_counter())
        self.count += 1
        self.history.append(event)
        self._history_bytes += len(wire)
        while self._history_bytes > HISTORY_BYTES and len(self.history) > 1:
            self._history_bytes -= len(self.history.popleft().wire)
        self._metrics.sse_events.inc()
        self._work.set()
        return event

    def starting_at(self, position: str) -> int | None:
        """The number of the remembered event that starts at `position`, if any."""
        return next((e.number for e in self.history if e.start == position), None)

    def subscribe(self, transport: asyncio.Transport, limit: int, chunked: bool, next_event: int) -> Subscriber:
        subscriber = Subscriber(transport, limit, chunked, next_event)
        self.subscribers.add(subscriber)
        if next_event < self.count:
            self._work.set()
        return subscriber

    async def run(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            await self._round()

    async def _round(self) -> None:
        subscribers = list(self.subscribers)
        newest = round_newest = self.count
        for start in range(0, len(subscribers), SLICE):
            if start:
                await asyncio.sleep(0)  # the origin's next events, and everything else, get in
                if self.count != newest:
                    newest = self.count
                    self._work.set()  # the subscribers already written lack them: another round
            self._deliver(subscribers[start : start + SLICE], newest)
        self._observe(round_newest)

    def flush(self) -> None:
        """Everything to everyone now (the hub is ending)."""
        self._deliver(list(self.subscribers), self.count)

    def comment(self, data: bytes) -> None:
        """Bytes outside the events (a keep-alive) to every subscriber with nothing pending."""
        framed = chunk_framed(data)
        for subscriber in self.subscribers:
            if subscriber.next == self.count and not (subscriber.done or subscriber.overflow):
                subscriber.send(framed if subscriber.chunked else data, False)

    def _deliver(self, subscribers: list[Subscriber], newest: int) -> None:
        """Each subscriber's missing events before `newest`, as one write."""
        shared_from, shared_chunked, shared = -1, False, (b"", False)
        for subscriber in subscribers:
            first = subscriber.next
            if first >= newest or subscriber.done or subscriber.overflow:
                continue
            if first != shared_from or subscriber.chunked != shared_chunked:
                shared_from, shared_chunked = first, subscriber.chunked
                shared = self._joined(first, newest, shared_chunked)
            data, closes = shared
            subscriber.next = newest
            if not data:
                subscriber.cut_off()  # its next event is no longer remembered
                continue
            try:
                subscriber.send(data, closes)
            except (RuntimeError, OSError):  # its transport broke under us: it ends, the rest go on
                subscriber.finish()

    def _joined(self, first: int, newest: int, chunked: bool) -> tuple[bytes, bool]:
        """Events `first` to `newest` - 1 as bytes to write (b"": forgotten), and whether they end the stream."""
        history = self.history
        base = history[0].number if history else self.count
        if first < base:
            return b"", False
        events = [history[i] for i in range(first - base, newest - base)]
        wire = b"".join(event.wire for event in events)
        return (chunk_framed(wire) if chunked else wire), events[-1].closed

    def _observe(self, delivered: int) -> None:
        """Events before `delivered` have now reached every subscriber: time them."""
        if delivered <= self._delivered:
            return
        now = time.perf_counter()
        for event in reversed(self.history):
            if event.number < self._delivered:
                break
            if event.number < delivered:
                self._metrics.delivery_lag.observe(now - event.arrived)
        self._delivered = delivered
