from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from plugin_streams.origin.subscriptions.persistence import FILE_NAME, SubscriptionFile


async def test_round_trip_and_atomic_replacement(tmp_path: Path) -> None:
    store = SubscriptionFile(tmp_path)
    assert await store.load() is None
    await store.save(lambda: {"subscriptions": [1]})
    await store.save(lambda: {"subscriptions": [1, 2]})
    assert (await SubscriptionFile(tmp_path).load()) == {"format": 1, "subscriptions": [1, 2]}
    assert await asyncio.to_thread(os.listdir, tmp_path) == [FILE_NAME]  # no temporary file left


async def test_concurrent_saves_end_with_the_latest_state(tmp_path: Path) -> None:
    store = SubscriptionFile(tmp_path)
    state = {"n": 0}

    async def bump() -> None:
        state["n"] += 1
        await store.save(lambda: dict(state))

    await asyncio.gather(*(bump() for _ in range(20)))
    assert (await store.load()) == {"format": 1, "n": 20}


async def test_a_cancelled_save_does_not_collide_with_the_next(tmp_path: Path) -> None:
    store = SubscriptionFile(tmp_path)
    first = asyncio.ensure_future(store.save(lambda: {"v": 1}))
    await asyncio.sleep(0)
    first.cancel()
    await store.save(lambda: {"v": 2})
    assert (await store.load()) == {"format": 1, "v": 2}


async def test_a_foreign_document_is_refused(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError):
        await SubscriptionFile(tmp_path).load()
