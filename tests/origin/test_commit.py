"""Group commit: concurrent appends share writes; a failed write fails its batch and the queue behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage import MemoryStore, Record, StorageFailure
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.parse import AppendRequest, CreateRequest

CREATE = CreateRequest(content_type="text/plain", ttl_seconds=None, expires=None, closed=False, fork=None)
APPEND = AppendRequest(content_type="text/plain", closed=False, stream_seq=None, producer=None)


class SlowStore(MemoryStore):
    """A memory store whose appends take a while, and can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.fail_next = False

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        await asyncio.sleep(0.01)
        if self.fail_next:
            self.fail_next = False
            raise StorageFailure("disk full")
        self.batches.append(len(records))
        await super().append(generation, records)


@pytest.fixture
async def service() -> StreamService:
    clock = iter(range(10**9))
    svc = StreamService(SlowStore(), lambda: 1_800_000_000_000 + next(clock))
    await svc.start()
    await svc.create("s", CREATE, b"")
    return svc


async def test_concurrent_appends_share_batches(service: StreamService) -> None:
    results = await asyncio.gather(*(service.append("s", APPEND, b"%03d" % i) for i in range(50)))
    store = service.store
    assert isinstance(store, SlowStore)
    assert sum(store.batches) == 50
    assert len(store.batches) <= 5, store.batches  # 50 writers, a handful of writes
    ends = [r.next_position for r in results]
    assert ends == sorted(ends) and len(set(ends)) == 50
    state = service.registry.by_path["s"]
    assert state.tail == 150
    assert await store.read(state.generation, 0, 50) == b"".join(b"%03d" % i for i in range(50))


async def test_failed_write_fails_the_queue_and_rolls_back(service: StreamService) -> None:
    store = service.store
    assert isinstance(store, SlowStore)
    await service.append("s", APPEND, b"ok")
    store.fail_next = True
    outcomes = await asyncio.gather(*(service.append("s", APPEND, b"xx") for _ in range(5)), return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, Unavailable)]
    assert failed, outcomes  # at least the first batch failed
    state = service.registry.by_path["s"]
    # Whatever succeeded afterwards is contiguous with what is durable.
    assert state.v_tail == state.tail == 2 + 2 * (len(outcomes) - len(failed))
    after = await service.append("s", APPEND, b"!")
    assert after.next_position == state.tail
    assert (
        await store.read(state.generation, 0, len(state.starts)) == b"ok" + b"xx" * (len(outcomes) - len(failed)) + b"!"
    )
