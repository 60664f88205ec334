"""Rolling delivery rounds (edge.delivery), with transports that record what is written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from plugin_streams.edge import delivery as delivery_module
from plugin_streams.edge.delivery import Delivery, chunk_framed
from plugin_streams.edge.metrics import EdgeMetrics


class Transport:
    def __init__(self, on_write: Callable[[], None] = lambda: None) -> None:
        self.writes: list[bytes] = []
        self.buffer = 0
        self.on_write = on_write

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.on_write()

    def get_write_buffer_size(self) -> int:
        return self.buffer

    def is_closing(self) -> bool:
        return False


def wire(n: int) -> bytes:
    return b"event: data\ndata: [%d]\n\n" % n


def add(delivery: Delivery, n: int, closed: bool = False) -> None:
    delivery.add(f"o{n}", f"o{n + 1}", wire(n), closed)


@pytest.fixture
def delivery(monkeypatch: pytest.MonkeyPatch) -> Delivery:
    monkeypatch.setattr(delivery_module, "SLICE", 2)
    return Delivery(EdgeMetrics(CollectorRegistry()))


async def run_rounds(delivery: Delivery) -> None:
    """Run the delivery task until its rounds are done (a few loop iterations), then stop it."""
    task = asyncio.ensure_future(delivery.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0)
    finally:
        task.cancel()


async def test_each_subscriber_gets_what_it_lacks_in_one_write(delivery: Delivery) -> None:
    plain = [Transport() for _ in range(3)]
    chunked = [Transport() for _ in range(2)]
    subscribers = [delivery.subscribe(t, 1 << 20, False, 0) for t in plain]
    subscribers += [delivery.subscribe(t, 1 << 20, True, 0) for t in chunked]
    add(delivery, 0)
    add(delivery, 1)
    await run_rounds(delivery)
    assert all(t.writes == [wire(0) + wire(1)] for t in plain)
    assert all(t.writes == [chunk_framed(wire(0) + wire(1))] for t in chunked)
    assert all(s.next == 2 for s in subscribers)


async def test_an_event_arriving_mid_round_joins_it_for_the_subscribers_not_yet_reached(delivery: Delivery) -> None:
    arrivals = iter([lambda: add(delivery, 1)])

    def first_write() -> None:  # the round's first write: the round has just begun
        next(arrivals, lambda: None)()

    transports = [Transport(first_write) for _ in range(6)]
    for transport in transports:
        delivery.subscribe(transport, 1 << 20, False, 0)
    add(delivery, 0)
    await run_rounds(delivery)
    written = {id(t): t.writes for t in transports}
    first_slice = [t for t in transports if written[id(t)] == [wire(0), wire(1)]]
    later = [t for t in transports if written[id(t)] == [wire(0) + wire(1)]]
    # (Subscribers are a set: which two share the first slice is not fixed.)
    assert len(first_slice) == 2 and len(later) == 4


async def test_a_subscriber_behind_the_history_is_cut_off_and_a_closing_event_finishes(
    delivery: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_module, "HISTORY_BYTES", len(wire(0)) * 2)
    for n in range(4):
        add(delivery, n)  # only the last two are remembered
    behind, current, full = Transport(), Transport(), Transport()
    full.buffer = 1 << 20
    lost = delivery.subscribe(behind, 1 << 20, False, 1)
    kept = delivery.subscribe(current, 1 << 20, False, 3)
    slow = delivery.subscribe(full, 1 << 20, False, 3)
    add(delivery, 4, closed=True)  # now 3 and 4 are remembered
    delivery.flush()
    assert lost.overflow and lost.wake.is_set() and behind.writes == []
    assert current.writes == [wire(3) + wire(4)] and kept.done and kept.wake.is_set()
    assert slow.overflow and full.writes == []  # its buffer is past its budget
    assert delivery.starting_at("o3") == 3 and delivery.starting_at("o2") is None


async def test_a_transport_failing_under_a_round_ends_its_client_only(delivery: Delivery) -> None:
    def broken() -> None:
        raise RuntimeError("unable to perform operation: the handler is closed")

    transports = [Transport(broken)] + [Transport() for _ in range(4)]
    subscribers = [delivery.subscribe(t, 1 << 20, False, 0) for t in transports]
    add(delivery, 0)
    await run_rounds(delivery)
    assert subscribers[0].done and subscribers[0].wake.is_set()
    assert all(t.writes == [wire(0)] for t in transports)  # (the broken one's write was attempted)
    assert not any(s.done for s in subscribers[1:])
