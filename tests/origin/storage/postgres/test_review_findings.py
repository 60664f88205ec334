"""Review findings on the multi-origin postgres engine: each test names one bug it reproduces.

In-process: StreamService objects on one fresh database (the postgres_dsn fixture), the way two
origin processes share it, so each race is arranged deterministically instead of hoped for.
Each test failed before its fix (origin/shared_registry.py, origin/wakeups.py, the change feed's lock).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from multidict import CIMultiDict

from plugin_streams.origin.replication.shared_changes import SharedChangeLog
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage.base import StorageFailure
from plugin_streams.origin.storage.postgres.change_feed import FEED_LOCK, ChangeFeed
from plugin_streams.origin.storage.postgres.store import PostgresStore
from plugin_streams.origin.stream import StreamState
from plugin_streams.origin.wakeups import Wakeups, decode
from plugin_streams.shared import parse
from plugin_streams.shared.aio.tasks import spawn
from plugin_streams.shared.errors import Unavailable

pytestmark = pytest.mark.timeout(60)

TEXT = {"Content-Type": "text/plain"}
JSON = {"Content-Type": "application/json"}


def _clock() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def origins(postgres_dsn: str) -> AsyncIterator[Callable[..., Any]]:
    """A factory of started StreamServices on the test's database (stopped afterwards)."""
    started: list[StreamService] = []

    async def origin(**options: Any) -> StreamService:
        service = StreamService(PostgresStore(postgres_dsn, pool_size=4), _clock, **options)
        await service.start()
        started.append(service)
        return service

    yield origin
    for service in started:
        await service.stop()
        assert service.shared is not None
        await service.shared.store.close()


async def _create(service: StreamService, path: str, headers: dict[str, str]) -> StreamState:
    result = await service.create(path, parse.parse_create(CIMultiDict(headers)), b"")
    return result.state


async def _append(service: StreamService, path: str, body: bytes, headers: dict[str, str] = TEXT) -> int:
    request = parse.parse_append(CIMultiDict(headers), body_empty=not body)
    return (await service.append(path, request, body)).next_position


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


# -- 1: a catch-up across records another origin appended AND dropped (retention) --------------


async def test_catch_up_over_records_already_dropped_by_retention_keeps_the_tail(
    origins: Callable[..., Any],
) -> None:
    a = await origins(compact_min_bytes=1)
    b = await origins()
    assert b.shared is not None
    await b.shared.wakeups.stop()  # B hears nothing (a lost NOTIFY, a listener reconnecting)
    await _create(a, "kept", TEXT | {"Stream-Retention-Max-Bytes": "250"})
    cached = await b.registry.find("kept", _clock())  # B holds the stream at 0 records
    assert cached is not None and cached.record_count == 0
    tail = 0
    for i in range(10):
        tail = await _append(a, "kept", bytes([65 + i]) * 100)
    a_state = await a.live("kept")
    await _until(lambda: a_state.maintenance is None and a_state.dropped > 0)  # A's compaction committed
    b_state = await b.live("kept")
    assert (b_state.record_count, b_state.tail) == (10, tail) == (a_state.record_count, a_state.tail)


# -- 2: a NOTIFY announced while the previous one is being sent ---------------------------------


class _BlockingPool:
    """A pool whose connection is handed out only when the test says so; records NOTIFY payloads."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.payloads: list[str] = []

    def acquire(self) -> _BlockingPool:
        return self

    async def __aenter__(self) -> _BlockingPool:
        self.entered.set()
        await self.release.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, query: str, channel: str, payload: str) -> None:
        self.payloads.append(payload)


async def test_a_change_announced_while_a_notify_is_in_flight_is_sent() -> None:
    pool = _BlockingPool()
    store = SimpleNamespace(pool=pool, metrics=None)
    wakeups = Wakeups("postgresql://unused", cast(Any, None), cast(Any, store), interval=0)
    wakeups.changed(cast(StreamState, SimpleNamespace(generation=1, record_count=5)))
    async with asyncio.timeout(5):
        await pool.entered.wait()  # the first NOTIFY is on its way
    wakeups.changed(cast(StreamState, SimpleNamespace(generation=2, record_count=7)))
    pool.release.set()
    for _ in range(100):
        await asyncio.sleep(0.01)
    heard: dict[int, int] = {}
    for payload in pool.payloads:
        heard.update(decode(payload)[1])
    assert heard == {1: 5, 2: 7}


# -- 3: evicting a cached state that a request holds ---------------------------------------------


async def test_eviction_does_not_turn_an_append_in_progress_into_404(origins: Callable[..., Any]) -> None:
    a = await origins()
    b = await origins()
    await _create(a, "held", JSON)
    await _create(b, "other", JSON)  # created through B: A must load it
    assert isinstance(a.registry.capacity, int)
    a.registry.capacity = 1  # as an origin whose working set is at its capacity
    body = json.dumps([{"n": i, "pad": "x" * 20} for i in range(60_000)]).encode()  # parsed off the loop
    append = asyncio.ensure_future(_append(a, "held", body, JSON))
    await asyncio.sleep(0.005)  # the append has found its state and is parsing the body
    assert await a.registry.find("other", _clock()) is not None  # loads "other": "held" is evicted
    assert await append > 0


# -- 4: the change feed's numbers, committed out of order -----------------------------------------


async def test_change_feed_serves_an_event_committed_after_a_later_numbered_one(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, pool_size=4)
    await store.prepare()
    log = SharedChangeLog(ChangeFeed(store))
    await log.start()
    slow = await asyncpg.connect(postgres_dsn)  # another origin's ChangeFeed.add, mid-commit
    try:
        async with slow.transaction():
            await slow.execute("SELECT pg_advisory_xact_lock($1)", FEED_LOCK)  # as ChangeFeed.add does
            await slow.execute("INSERT INTO ds_change (event) VALUES ($1)", '{"type":"deleted","path":"a"}')
            later = spawn(ChangeFeed(store).add(['{"type":"created","path":"b"}']), name="later-add")
            await asyncio.sleep(0.2)
            log.refresh()
            await asyncio.sleep(0.2)
            # The later event waits for the earlier one's commit: it cannot be numbered, or seen, first.
            assert not later.done() and log.seq == 0
        await later
        log.refresh()  # as the origins' NOTIFY makes it
        await _until(lambda: log.seq > 0)
        await asyncio.sleep(0.2)
        events = log.since(log.epoch, 0)
        assert events is not None
        assert [json.loads(line)["path"] for line in events] == ["a", "b"]
    finally:
        await slow.close()
        await store.close()


# -- 5: a soft delete the database did not record ---------------------------------------------


async def test_a_failed_soft_delete_leaves_the_stream_live_on_the_origin_that_tried(
    origins: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await origins()
    b = await origins()
    await _create(a, "source", TEXT)
    await _append(a, "source", b"kept for the fork")
    await _create(a, "fork", TEXT | {"Stream-Forked-From": "source"})  # so DELETE soft-deletes
    assert a.shared is not None

    async def unreachable(config: object) -> None:
        raise StorageFailure("database: connection lost")  # as during a failover

    monkeypatch.setattr(a.shared.store, "replace_config", unreachable)
    with pytest.raises(Unavailable):
        await a.delete("source")
    monkeypatch.undo()  # the database is back
    assert (await b.live("source")).tail > 0  # the database holds it live: B serves it
    assert (await a.live("source")).tail > 0  # and so should A
