"""Which streams a region wants: patterns, lazily replicated reads going idle, TTL reads to report."""

from __future__ import annotations

from plugin_streams.edge.region.interest import ReadInterest
from plugin_streams.edge.region.patterns import PathPatterns


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stream_read_here_is_wanted_until_it_goes_unread_for_the_idle_time() -> None:
    clock = FakeMonotonic()
    interest = ReadInterest(PathPatterns(["orders/**"]), idle=10.0, monotonic=clock)
    assert interest.wanted("orders/1") and not interest.wanted("logs/a")
    interest.start_lazily("logs/a")
    interest.start_lazily("logs/b")
    assert interest.wanted("logs/a") and interest.is_lazy("logs/a")
    clock.now += 8
    interest.note_read("logs/a", sliding_ttl=False)
    clock.now += 3
    assert interest.take_idle() == ["logs/b"]
    assert interest.wanted("logs/a") and not interest.wanted("logs/b")
    clock.now += 11
    assert interest.take_idle() == ["logs/a"] and interest.take_idle() == []


def test_reads_of_ttl_streams_are_reported_once_and_unsent_ones_are_kept() -> None:
    interest = ReadInterest(PathPatterns([]), idle=10.0)
    interest.note_read("b", sliding_ttl=True)
    interest.note_read("a", sliding_ttl=True)
    interest.note_read("no-ttl", sliding_ttl=False)
    assert interest.any_touched and interest.take_touched() == ["a", "b"]
    assert not interest.any_touched
    interest.note_read("c", sliding_ttl=True)
    interest.untake(["b"])  # the report of b failed
    assert interest.take_touched() == ["b", "c"]
