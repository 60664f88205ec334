"""The long-poll planner (edge.long_poll_plan), step by step: no process, socket or event loop.

Each test puts the planner's knowledge in a known state (writes through the edge, recent
answers, flights in progress, the clocks) and checks the decision for one request.
"""

from __future__ import annotations

from multidict import CIMultiDict

from plugin_streams.edge.chunks import Chunk, ChunkKey
from plugin_streams.edge.long_poll_plan import (
    STOPPING,
    AfterFlight,
    FlightKey,
    FromCache,
    FromRecent,
    JoinFlight,
    LongPollPlanner,
    PollRequest,
    StartFlight,
    Stopping,
)
from plugin_streams.edge.scope import ReadScope
from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import cursor
from plugin_streams.shared import headers as h
from plugin_streams.shared.offsets import Offset

PUBLIC = ReadScope("s", None, signed=False)
LIVE = "public, max-age=20"  # what the origin lets a long-poll answer live (caching.LONG_POLL_MAX_AGE)


class Clocks:
    """The planner's two clocks, moved by hand: the wall clock (ms) and the memory's timer (s)."""

    def __init__(self) -> None:
        self.wall_ms = cursor.EPOCH_MS + 1_000 * cursor.INTERVAL_MS
        self.monotonic = 100.0

    def planner(self, **limits: int) -> LongPollPlanner:
        return LongPollPlanner(lambda: self.wall_ms, lambda: self.monotonic, **limits)


def at(position: int, generation: int = 0) -> Offset:
    return Offset(generation, position)


def poll(offset: Offset | None, scope: ReadScope = PUBLIC, echoed: int | None = None) -> PollRequest:
    return PollRequest(scope, offset, "-1" if offset is None else str(offset), echoed)


def answer(end: Offset, body: bytes = b"data", cache_control: str = LIVE, status: int = 200) -> Reply:
    headers = CIMultiDict({h.STREAM_NEXT_OFFSET: str(end), h.CACHE_CONTROL: cache_control, h.ETAG: '"e"'})
    return Reply(status, headers, body)


def timed_out(offset: Offset) -> Reply:
    return Reply(204, CIMultiDict({h.STREAM_NEXT_OFFSET: str(offset)}), b"")


def nothing_in_flight(key: FlightKey) -> bool:
    return False


def everything_in_flight(key: FlightKey) -> bool:
    return True


def plan(
    planner: LongPollPlanner,
    request: PollRequest,
    *,
    cached: Chunk | None = None,
    stopped: bool = False,
    in_flight: bool = False,
) -> object:
    return planner.plan(
        request, cached=cached, stopped=stopped, in_flight=everything_in_flight if in_flight else nothing_in_flight
    )


# -- keys ------------------------------------------------------------------------------------


def test_flight_keys_are_typed_and_name_owner_path_epoch_and_read() -> None:
    planner = Clocks().planner()
    assert planner.flight_key(PUBLIC, "offset=x") == FlightKey("s", "s", 0, "offset=x")
    private = ReadScope("s", "s\0token", signed=False)
    assert planner.flight_key(private, "offset=x").owner == "s\0token"  # never shared with the public
    planner.wrote("s", at(20))
    assert planner.flight_key(PUBLIC, "offset=x").epoch == 1  # reads without an offset: after the write
    assert planner.flight_key(PUBLIC, str(at(10)), at(10)).epoch == 0  # from an offset: since the barrier


# -- answer now ------------------------------------------------------------------------------


def test_cached_data_at_the_offset_is_the_answer() -> None:
    planner = Clocks().planner()
    chunk = Chunk.make(ChunkKey("s", 0, 0), 40, b"x" * 40, h.DEFAULT_CONTENT_TYPE, LIVE, None)
    assert plan(planner, poll(at(10)), cached=chunk, stopped=True) == FromCache(chunk, 10)


def test_a_recent_answer_from_the_offset_is_given_at_once() -> None:
    planner = Clocks().planner()
    start = planner.plan(poll(at(10)), cached=None, stopped=False, in_flight=nothing_in_flight)
    assert isinstance(start, StartFlight)
    reply = answer(at(30))
    planner.remember(start.key, at(10), reply)
    assert plan(planner, poll(at(10))) == FromRecent(reply)
    assert plan(planner, poll(at(10), ReadScope("s", "s\0token", signed=False))) != FromRecent(reply)


def test_recent_answers_are_forgotten_after_a_long_poll_answers_max_age() -> None:
    clocks = Clocks()
    planner = clocks.planner()
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    planner.remember(key, at(10), answer(at(30)))
    clocks.monotonic += 19
    assert isinstance(plan(planner, poll(at(10))), FromRecent)
    clocks.monotonic += 2
    assert isinstance(plan(planner, poll(at(10))), StartFlight)


def test_only_answers_from_an_offset_that_may_live_as_long_are_remembered() -> None:
    planner = Clocks().planner()
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    for offset, reply in [
        (None, answer(at(30))),  # `-1`: what it answers changes
        (at(10), timed_out(at(10))),  # a 204 is never shared later
        (at(10), answer(at(30), status=404)),
        (at(10), answer(at(30), cache_control="no-store")),
        (at(10), answer(at(30), cache_control="public, max-age=5")),  # a TTL stream, a signature
        (at(10), answer(at(30), cache_control="")),
    ]:
        planner.remember(key, offset, reply)
        assert isinstance(plan(planner, poll(at(10))), StartFlight), (offset, reply)


def test_a_reader_behind_this_edges_write_is_not_given_a_recent_answer_short_of_it() -> None:
    planner = Clocks().planner()
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    planner.remember(key, at(10), answer(at(20)))
    planner.wrote("s", at(30))  # an append through this edge ending at 30
    decision = plan(planner, poll(at(10)))
    assert isinstance(decision, StartFlight) and decision.need == at(30)
    assert decision.key == key  # the same epoch (appends are no barrier): it may share that flight


def test_recent_answers_joined_reach_a_readers_write() -> None:
    planner = Clocks().planner()
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    planner.remember(key, at(10), answer(at(20), b"0123456789"))
    planner.remember(key._replace(what=str(at(20))), at(20), answer(at(30), b"abcdefghij"))
    planner.wrote("s", at(30))
    decision = plan(planner, poll(at(10)))
    assert isinstance(decision, FromRecent)
    assert decision.reply.body == b"0123456789abcdefghij"
    assert decision.reply.headers[h.STREAM_NEXT_OFFSET] == str(at(30))
    assert plan(planner, poll(at(10))) == decision  # remembered: readers lagging together all get it


def test_joining_stops_at_a_gap_and_at_the_most_answers_joined() -> None:
    planner = Clocks().planner(max_joined=2)
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    planner.remember(key, at(10), answer(at(20)))
    planner.remember(key._replace(what=str(at(20))), at(20), answer(at(25)))
    planner.remember(key._replace(what=str(at(25))), at(25), answer(at(30)))
    planner.wrote("s", at(30))
    assert isinstance(plan(planner, poll(at(10))), StartFlight)  # three needed, two allowed
    planner.wrote("s", at(40))  # nothing remembered from 30 on: a gap
    assert isinstance(plan(planner, poll(at(20))), StartFlight)


def test_a_barrier_ends_sharing_recent_answers() -> None:
    planner = Clocks().planner()
    planner.remember(planner.flight_key(PUBLIC, str(at(10)), at(10)), at(10), answer(at(30)))
    planner.wrote("s")  # a close, delete or create
    decision = plan(planner, poll(at(10)))
    assert isinstance(decision, StartFlight) and decision.key.epoch == 1


def test_shutting_down_answers_stopping_after_what_is_known() -> None:
    planner = Clocks().planner()
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    planner.remember(key, at(10), answer(at(30)))
    assert isinstance(plan(planner, poll(at(10)), stopped=True), FromRecent)
    assert isinstance(plan(planner, poll(at(30)), stopped=True, in_flight=True), Stopping)


# -- flights ---------------------------------------------------------------------------------


def test_a_flight_in_progress_is_joined_otherwise_started() -> None:
    planner = Clocks().planner()
    request = poll(at(10))
    key = planner.flight_key(PUBLIC, str(at(10)), at(10))
    assert plan(planner, request) == StartFlight(key, request, None)
    assert plan(planner, request, in_flight=True) == JoinFlight(key, request, None)
    seen: list[FlightKey] = []

    def in_flight(asked: FlightKey) -> bool:
        seen.append(asked)
        return False

    planner.plan(request, cached=None, stopped=False, in_flight=in_flight)
    assert seen == [key]


def test_a_flights_answer_reaching_the_readers_writes_is_delivered() -> None:
    planner = Clocks().planner()
    planner.wrote("s", at(30))
    flight = plan(planner, poll(at(10)))
    assert isinstance(flight, StartFlight) and flight.need == at(30)
    assert planner.after(flight, answer(at(30))) is AfterFlight.DELIVER
    assert planner.after(flight, answer(at(40))) is AfterFlight.DELIVER


def test_an_answer_short_of_the_readers_writes_asks_again_under_the_strict_key_once() -> None:
    planner = Clocks().planner()
    planner.wrote("s", at(30))
    flight = plan(planner, poll(at(10)))
    assert isinstance(flight, StartFlight)
    assert planner.after(flight, answer(at(20))) is AfterFlight.ASK_AGAIN
    assert planner.after(flight, timed_out(at(10))) is AfterFlight.ASK_AGAIN
    again = planner.ask_again(flight, nothing_in_flight)
    assert again == StartFlight(FlightKey("s", "s", 1, str(at(10))), flight.request, at(30), first=False)
    assert isinstance(planner.ask_again(flight, everything_in_flight), JoinFlight)
    assert planner.after(again, answer(at(20))) is AfterFlight.DELIVER  # final, whatever it is


def test_an_error_from_a_flight_that_may_predate_the_readers_writes_asks_again() -> None:
    planner = Clocks().planner()
    planner.wrote("s", at(30))
    flight = plan(planner, poll(at(30)))  # at the end of its write: any answer reaches it
    assert isinstance(flight, StartFlight) and flight.need is None and flight.key.epoch == 0
    beyond_the_end = answer(at(30), status=400)  # the flight began before the append arrived
    assert planner.after(flight, beyond_the_end) is AfterFlight.ASK_AGAIN
    assert planner.after(flight, timed_out(at(30))) is AfterFlight.DELIVER


def test_without_writes_through_this_edge_every_answer_is_delivered() -> None:
    planner = Clocks().planner()
    flight = plan(planner, poll(at(10)))
    assert isinstance(flight, StartFlight)
    for reply in (answer(at(20)), timed_out(at(10)), answer(at(10), status=404)):
        assert planner.after(flight, reply) is AfterFlight.DELIVER


def test_a_write_while_waiting_makes_the_flight_one_that_may_predate_it() -> None:
    planner = Clocks().planner()
    flight = plan(planner, poll(at(10)))
    assert isinstance(flight, StartFlight)
    planner.wrote("s", at(10))  # acknowledged while the flight waited
    assert planner.after(flight, answer(at(10), status=400)) is AfterFlight.ASK_AGAIN


def test_the_shutdown_answer_is_stopping() -> None:
    planner = Clocks().planner()
    flight = plan(planner, poll(at(10)))
    assert isinstance(flight, StartFlight)
    assert planner.after(flight, STOPPING) is AfterFlight.STOPPING


# -- cursors ---------------------------------------------------------------------------------


def test_cursors_come_from_the_injected_wall_clock() -> None:
    clocks = Clocks()
    planner = clocks.planner()
    assert planner.cursor(poll(at(10))) == 1_000
    clocks.wall_ms += cursor.INTERVAL_MS
    assert planner.cursor(poll(at(10))) == 1_001
    ahead = planner.cursor(poll(at(10), echoed=1_001))
    assert ahead > 1_001 and ahead == planner.cursor(poll(at(10), echoed=1_001))  # deterministic
