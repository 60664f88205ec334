"""The manager against an in-memory view of streams: wakes, fencing, leases, pull claims, persistence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin_streams.origin.subscriptions.errors import SubscriptionError
from plugin_streams.origin.subscriptions.manager import SubscriptionManager
from plugin_streams.origin.subscriptions.model import BEFORE_FIRST, parse_config
from plugin_streams.origin.subscriptions.persistence import SubscriptionFile

BASE = "http://127.0.0.1:9"


def off(position: int) -> str:
    return f"{1:016d}_{position:016d}"


class FakeStreams:
    def __init__(self) -> None:
        self.tails: dict[str, int] = {}
        self.appended: dict[str, list[dict[str, Any]]] = {}

    def write(self, path: str, size: int) -> None:
        self.tails[path] = self.tails.get(path, 0) + size

    def tail_offset(self, path: str) -> str | None:
        return off(self.tails[path]) if path in self.tails else None

    def paths(self) -> Iterator[str]:
        yield from list(self.tails)

    async def append_json(self, path: str, message: bytes) -> bool:
        if path not in self.tails:
            return False
        self.appended.setdefault(path, []).append(json.loads(message))
        self.write(path, len(message))
        return True


def pull_config(lease_ms: int = 1000) -> Any:
    return parse_config({"type": "pull-wake", "pattern": "events/*", "wake_stream": "wake/w", "lease_ttl_ms": lease_ms})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def streams() -> FakeStreams:
    s = FakeStreams()
    s.write("wake/w", 2)
    return s


async def started(streams: FakeStreams, directory: Path | None = None) -> SubscriptionManager:
    manager = SubscriptionManager(streams, SubscriptionFile(directory) if directory else None)
    await manager.start()
    return manager


async def test_backfill_links_existing_streams_at_their_tail(streams: FakeStreams) -> None:
    streams.write("events/old", 5)
    streams.write("other/x", 5)
    manager = await started(streams)
    subscription, created = await manager.create_or_confirm("p", pull_config(), BASE)
    assert created
    assert {i["path"]: i["has_pending"] for i in manager.stream_infos(subscription)} == {"events/old": False}
    again, created_again = await manager.create_or_confirm("p", pull_config(), BASE)
    assert again is subscription and not created_again
    with pytest.raises(SubscriptionError) as conflict:
        await manager.create_or_confirm("p", pull_config(lease_ms=2000), BASE)
    assert conflict.value.code == "SUBSCRIPTION_ALREADY_EXISTS"
    await manager.close()


async def test_pull_wake_claim_fencing_and_release(streams: FakeStreams) -> None:
    manager = await started(streams)
    await manager.create_or_confirm("p", pull_config(), BASE)
    with pytest.raises(SubscriptionError) as idle:
        await manager.claim("p", "w1")
    assert idle.value.code == "NO_PENDING_WORK"

    streams.write("events/a", 3)
    manager.stream_written("events/a")
    await settle()
    assert [e["subscription_id"] for e in streams.appended["wake/w"]] == ["p"]  # the wake event
    claimed = await manager.claim("p", "w1")
    with pytest.raises(SubscriptionError) as busy:
        await manager.claim("p", "w2")
    assert busy.value.code == "ALREADY_CLAIMED" and busy.value.extra["current_holder"] == "w1"

    stale = {"wake_id": claimed["wake_id"], "generation": claimed["generation"] - 1}
    with pytest.raises(SubscriptionError) as fenced:
        await manager.acknowledge("p", claimed["token"], stale, pull=True)
    assert fenced.value.code == "FENCED"
    with pytest.raises(SubscriptionError) as forged:
        await manager.acknowledge(
            "p", claimed["token"] + "x", {**stale, "generation": claimed["generation"]}, pull=True
        )
    assert forged.value.code == "TOKEN_INVALID"

    body = {"wake_id": claimed["wake_id"], "generation": claimed["generation"]}
    beyond = {**body, "acks": [{"stream": "events/a", "offset": off(4)}]}
    with pytest.raises(SubscriptionError) as bad_offset:
        await manager.acknowledge("p", claimed["token"], beyond, pull=True)
    assert bad_offset.value.code == "INVALID_OFFSET"
    done = {**body, "acks": [{"stream": "events/a", "offset": off(3)}], "done": True}
    assert await manager.acknowledge("p", claimed["token"], done, pull=True) is False
    with pytest.raises(SubscriptionError) as replay:  # the wake ended: its token is stale now
        await manager.acknowledge("p", claimed["token"], done, pull=True)
    assert replay.value.code == "FENCED"

    streams.write("events/a", 1)  # more work; claim makes the wake at once, without waiting for the event
    second = await manager.claim("p", "w1")
    assert second["generation"] > claimed["generation"]
    await manager.release("p", second["token"], {"wake_id": second["wake_id"], "generation": second["generation"]})
    await manager.close()


async def test_an_expired_lease_fences_the_holder_and_wakes_again(streams: FakeStreams) -> None:
    manager = await started(streams)
    await manager.create_or_confirm("p", pull_config(lease_ms=1000), BASE)
    streams.write("events/a", 3)
    manager.stream_written("events/a")
    claimed = await manager.claim("p", "slow-worker")
    await asyncio.sleep(1.2)
    subscription = manager.get("p")
    assert subscription.holder is None
    assert subscription.generation == claimed["generation"] + 1  # pending work woke the next worker
    body = {"wake_id": claimed["wake_id"], "generation": claimed["generation"], "done": True}
    with pytest.raises(SubscriptionError) as fenced:
        await manager.acknowledge("p", claimed["token"], body, pull=True)
    assert fenced.value.code == "FENCED"
    assert (await manager.claim("p", "next-worker"))["generation"] == subscription.generation
    await manager.close()


async def test_state_and_signing_key_survive_a_restart(streams: FakeStreams, tmp_path: Path) -> None:
    first = await started(streams, tmp_path)
    await first.create_or_confirm("p", pull_config(), BASE)
    explicit = parse_config({"type": "webhook", "streams": ["manual/a"], "webhook": {"url": "http://127.0.0.1:1/h"}})
    await first.create_or_confirm("h", explicit, BASE)
    await first.add_streams("h", ["manual/b"])
    streams.write("events/a", 3)
    first.stream_written("events/a")
    claimed = await first.claim("p", "w1")
    ack = {"wake_id": claimed["wake_id"], "generation": claimed["generation"], "done": True}
    await first.acknowledge(
        "p", claimed["token"], ack | {"acks": [{"stream": "events/a", "offset": off(3)}]}, pull=True
    )
    kid = first.key.kid
    await first.close()

    streams.write("events/b", 1)  # created while the origin was down: must not be missed
    second = await started(streams, tmp_path)
    assert second.key.kid == kid
    described = second.describe(second.get("p"))
    assert {s["path"]: s["acked_offset"] for s in described["streams"]} == {
        "events/a": off(3),
        "events/b": BEFORE_FIRST,
    }
    assert second.get("p").generation >= claimed["generation"]
    assert [s["path"] for s in second.describe(second.get("h"))["streams"]] == ["manual/a", "manual/b"]
    await second.remove_stream("h", "manual/b")
    await second.delete("p")
    await second.close()
    third = await started(streams, tmp_path)
    assert list(third.subscriptions) == ["h"]
    assert [s["path"] for s in third.describe(third.get("h"))["streams"]] == ["manual/a"]
    await third.close()


async def test_stream_delete_unlinks(streams: FakeStreams) -> None:
    manager = await started(streams)
    await manager.create_or_confirm("p", pull_config(), BASE)
    streams.write("events/a", 1)
    manager.stream_written("events/a")
    manager.stream_deleted("events/a")
    assert manager.describe(manager.get("p"))["streams"] == []
    await manager.close()
