"""What the edge does with a long-poll: the decision alone, made without I/O.

Both ways a long-poll reaches the edge, the handlers (edge.reads) and the fast lane
(edge.fast_reads), ask the planner what to do and then do only the I/O its decision names:
- answer from the cached data at the offset (found by the caller: the cache lookup is I/O);
- answer from a recent shared poll's answer: data after an explicit offset never changes, so a
  client arriving after a shared poll returned gets it at once (a prefix of what is there now;
  it then polls from the answer's end). A reader behind this edge's writes (edge.writes) gets
  recent answers joined until they reach its writes, or none;
- answer "stopping" (the edge is shutting down: the client resumes elsewhere);
- join the shared poll in progress for its key, or start it.
When a flight answers, `after` says whether the answer may be given to a waiter: one that may
have begun before the waiter's writes reached the origin, and falls short of them, says nothing
of them, so the waiter asks again under its strict key (a flight begun after its writes).

The planner keeps the edge's knowledge that decisions depend on: the writes through this edge
and the recent answers. Its clocks are injected (the cursor's wall clock, the memory's timer), so
it is tested step by step with no process, socket or event loop.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from cachetools import TTLCache
from multidict import CIMultiDict

from plugin_streams.edge.chunks import Chunk
from plugin_streams.edge.joined import join
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.upstream import Reply
from plugin_streams.edge.writes import WriteMarks, reaches
from plugin_streams.shared import caching, cursor
from plugin_streams.shared import headers as h
from plugin_streams.shared.offsets import Offset, parse_offset

#: Bytes of recent long-poll answers kept (each counted with a little overhead for its headers).
RECENT_POLL_BYTES: Final = 64 * 1024 * 1024
#: Most recent answers joined to give a reader behind this edge's writes an answer reaching them.
MAX_JOINED: Final = 16
#: What waiting long-polls receive when the edge shuts down (never cached or sent upstream).
STOPPING: Final = Reply(204, CIMultiDict(), b"")


class FlightKey(NamedTuple):
    """Shared reads with equal keys are one upstream request (and one remembered answer)."""

    owner: str  # whose answer it is: the credential, or the path for reads without one
    path: str
    epoch: int  # edge.writes: reads share only what was begun in the same epoch of the path's writes
    what: str  # the read: the offset text of a long-poll, the query of a catch-up


@dataclass(frozen=True, slots=True)
class PollRequest:
    """The facts of one long-poll request that decide its answer."""

    scope: ReadScope
    offset: Offset | None  # None: not an explicit offset (`-1`, `now`)
    offset_text: str
    echoed: int | None  # the cursor the client sent


@dataclass(frozen=True, slots=True)
class FromCache:
    """Answer now from the cached data at the offset."""

    chunk: Chunk
    position: int  # the offset's, inside the chunk


@dataclass(frozen=True, slots=True)
class FromRecent:
    """Answer now with a recent shared poll's answer (or recent answers joined)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Stopping:
    """Answer now that the edge is shutting down (204), so the client resumes elsewhere."""


@dataclass(frozen=True, slots=True)
class Flight:
    """Wait for the shared poll under `key`."""

    key: FlightKey
    request: PollRequest
    need: Offset | None  # where its answer must reach for this client (edge.writes; None: any)
    first: bool = True  # False: the flight asked again after one fell short; its answer is final


@dataclass(frozen=True, slots=True)
class JoinFlight(Flight):
    """Join the shared poll in progress under `key`."""


@dataclass(frozen=True, slots=True)
class StartFlight(Flight):
    """Start the shared poll under `key` (nobody is waiting for one)."""


Decision = FromCache | FromRecent | Stopping | JoinFlight | StartFlight


class AfterFlight(enum.Enum):
    """What a waiter of a flight does with the flight's answer."""

    DELIVER = "deliver"  # give it to the client
    ASK_AGAIN = "ask again"  # short of the client's writes: wait for a flight under `retry`
    STOPPING = "stopping"  # the edge is shutting down: answer so (Stopping)


_STOPPING: Final = Stopping()


class LongPollPlanner:
    def __init__(
        self,
        clock_ms: Callable[[], int],
        timer: Callable[[], float] = time.monotonic,
        *,
        recent_bytes: int = RECENT_POLL_BYTES,
        max_joined: int = MAX_JOINED,
    ) -> None:
        self.clock_ms = clock_ms  # wall clock (ms since the Unix epoch), for cursors
        self.writes = WriteMarks()  # per path: writes passed through, for read-your-writes
        self.max_joined = max_joined
        # Recent long-poll answers by flight key, kept no longer than a long-poll answer may be.
        self._recent: TTLCache[FlightKey, Reply] = TTLCache(
            maxsize=recent_bytes, ttl=caching.LONG_POLL_MAX_AGE, timer=timer, getsizeof=lambda r: len(r.body) + 512
        )

    # -- knowledge -------------------------------------------------------------------------

    def wrote(self, path: str, end: Offset | None = None) -> None:
        """A write to `path` passed through (an append ending at `end`; None: any other write):
        reads issued from now on share only flights that cannot predate it (edge.writes)."""
        self.writes.wrote(path, end)

    def remember(self, key: FlightKey, offset: Offset | None, reply: Reply) -> None:
        """A shared poll under `key` from `offset` answered `reply`: later readers may be given it."""
        # Only explicit offsets: data after one never changes (a `-1` answer may, and is short-lived).
        # Not an answer the origin let live shorter than the memory keeps it (a TTL or expiring
        # stream, a signature): a copy outlives no max-age, and such reads must reach the origin.
        cache_control = reply.headers.get(h.CACHE_CONTROL, "no-store")
        if (
            offset is not None
            and reply.status == 200
            and "no-store" not in cache_control
            and (caching.max_age(cache_control) or 0) >= caching.LONG_POLL_MAX_AGE
        ):
            self._recent[key] = reply

    # -- decisions -------------------------------------------------------------------------

    def flight_key(self, scope: ReadScope, what: str, offset: Offset | None = None) -> FlightKey:
        """The key of shared reads of `what` begun since the last write through this edge; for a
        long-poll from an `offset` no append since the last barrier passed, since that barrier
        (edge.writes)."""
        return FlightKey(scope.credential or scope.path, scope.path, self.writes.epoch(scope.path, offset), what)

    def plan(
        self, request: PollRequest, *, cached: Chunk | None, stopped: bool, in_flight: Callable[[FlightKey], bool]
    ) -> Decision:
        """What to do for `request`, given the cached data at its offset, whether the edge is
        shutting down, and which flights are in progress."""
        scope, offset = request.scope, request.offset
        if cached is not None and offset is not None:
            return FromCache(cached, offset.position)
        key = self.flight_key(scope, request.offset_text, offset)
        need = self.writes.needs(scope.path, offset)
        recent = self._recent.get(key)
        if recent is not None and need is not None and not may_answer(recent, need):
            recent = self._joined_recent(key, request.offset_text, recent, need)
        if recent is not None:
            return FromRecent(recent)
        if stopped:
            return _STOPPING
        return JoinFlight(key, request, need) if in_flight(key) else StartFlight(key, request, need)

    def after(self, flight: Flight, reply: Reply) -> AfterFlight:
        """What a waiter of `flight` does with its answer `reply`."""
        if flight.first and not may_answer(reply, flight.need) and self._strict(flight) != flight.key:
            # A flight that may have begun before this client's writes reached the origin (an
            # answer short of them; 400: beyond the end) says nothing of them: ask again, after.
            return AfterFlight.ASK_AGAIN
        return AfterFlight.STOPPING if reply is STOPPING else AfterFlight.DELIVER

    def ask_again(self, flight: Flight, in_flight: Callable[[FlightKey], bool]) -> JoinFlight | StartFlight:
        """The flight to wait for when `flight`'s answer fell short (`after`: ASK_AGAIN): one begun
        since the client's writes. Its answer is final (never asked again)."""
        key, request, need = self._strict(flight), flight.request, flight.need
        return JoinFlight(key, request, need, False) if in_flight(key) else StartFlight(key, request, need, False)

    def _strict(self, flight: Flight) -> FlightKey:
        """The key of flights begun since the last write through this edge, whatever the offset."""
        return self.flight_key(flight.request.scope, flight.request.offset_text)

    def cursor(self, request: PollRequest) -> int:
        """The cursor this client's answer carries now (shared.cursor)."""
        return cursor.next_cursor(self.clock_ms(), request.echoed, request.offset_text)

    def _joined_recent(self, key: FlightKey, offset_text: str, first: Reply, need: Offset) -> Reply | None:
        """Recent answers from `offset_text` on (each from where the one before ended), joined
        until they reach `need`; None if they don't yet. Remembered: readers lagging together
        all get it, and none of them asks the origin."""
        answers = [first]
        while not may_answer(answers[-1], need):
            after = self._recent.get(key._replace(what=answers[-1].headers[h.STREAM_NEXT_OFFSET]))
            if after is None or len(answers) == self.max_joined:
                return None
            answers.append(after)
        joined = self._recent[key] = join(offset_text, answers)
        return joined


def may_answer(reply: Reply, need: Offset | None) -> bool:
    """Whether a shared long-poll answer may be given to a reader that `needs` this (edge.writes)."""
    if reply.status == 200:
        return need is None or reaches(next_offset(reply), need)
    return reply.status == 204 and need is None


def next_offset(reply: Reply) -> Offset:
    """Where the data of a 200 answer ends."""
    return parse_offset(reply.headers[h.STREAM_NEXT_OFFSET])
