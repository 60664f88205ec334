"""The queue client against a real origin: listen_queue acks (with the handler's atomic), nack and
retry, a poison message dead-lettered with its offset, term, redrive, fencing, reset, stats."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from plugin_streams import AtomicOperation, Fenced, Kv, QueueMessage, Streams, SyncStreams, Term
from plugin_streams._kv_atomic import AtomicBuilder
from tests.client.conftest import Processes
from tests.client.test_kv import db_name
from tests.client.test_kv_watch import eventually
from tests.support.processes import OriginProcess


async def count_under(kv: Kv, prefix: tuple[str, ...]) -> int:
    return len([entry async for entry in kv.list(prefix, batch_size=1000)])


async def test_listen_queue_commits_each_effect_with_its_ack_exactly_once(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        ids = [(await kv.enqueue({"n": i})).enqueued[0] for i in range(40)]
        assert ids == sorted(ids)  # ids sort in enqueue order
        handled: Counter[str] = Counter()

        async def handle(message: QueueMessage) -> AtomicOperation:
            handled[message.id] += 1
            return kv.atomic().check(("done", message.id), None).set(("done", message.id), message.value)

        listener = kv.listen_queue(handle, concurrency=4, lease_ms=5000, wait_ms=200)
        await eventually(lambda: listener.acked == 40)
        listener.stop()
        await listener
        done = {entry.key[1]: entry.value async for entry in kv.list(("done",))}
        assert done == {message_id: {"n": i} for i, message_id in enumerate(ids)}
        assert set(handled.values()) == {1} and listener.nacked == 0
        stats = await kv.queue().stats()
        assert (stats.depth, stats.in_flight, stats.dlq) == (0, 0, 0)


async def test_an_exception_nacks_and_the_message_is_retried(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.enqueue("flaky", backoff_schedule=[50, 50, 50])
        attempts: list[int] = []

        def handle(message: QueueMessage) -> None:
            attempts.append(message.attempt)
            if message.attempt < 3:
                raise RuntimeError(f"attempt {message.attempt} failed")

        listener = kv.listen_queue(handle, lease_ms=5000, wait_ms=200)
        await eventually(lambda: listener.acked == 1)
        listener.stop()
        await listener
        assert attempts == [1, 2, 3] and listener.nacked == 2
        assert (await kv.queue().stats()).redeliveries >= 2


async def test_a_poison_message_reaches_the_dlq_and_redrive_brings_it_back(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        poison = await kv.enqueue(
            {"poison": True}, backoff_schedule=[10, 10], keys_if_undelivered=[("undelivered", "p")]
        )
        await kv.enqueue({"poison": False})
        cured = False

        def handle(message: QueueMessage) -> None:
            if message.value["poison"] and not cured:
                raise ValueError("cannot digest this")

        listener = kv.listen_queue(handle, lease_ms=5000, wait_ms=200)
        await eventually(lambda: listener.acked == 1 and listener.nacked == 3)
        [letter] = [letter async for letter in kv.queue().dlq()]
        assert letter.id == poison.enqueued[0] and letter.offset == poison.offset  # the enqueue's offset
        assert (letter.attempts, letter.reason, letter.value) == (3, "attempts_exhausted", {"poison": True})
        assert letter.last_error is not None and "cannot digest this" in letter.last_error
        assert (await kv.get(("undelivered", "p"))).value == {"poison": True}  # as in Deno
        assert (await kv.queue().stats()).dlq == 1
        cured = True
        assert await kv.queue().redrive() == 1
        await eventually(lambda: listener.acked == 2)
        listener.stop()
        await listener
        assert [letter async for letter in kv.queue().dlq()] == []


async def test_term_dead_letters_at_once(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.enqueue("bad input", backoff_schedule=[10, 10, 10])

        def handle(message: QueueMessage) -> None:
            raise Term("not a valid order")

        listener = kv.listen_queue(handle, group="orders", lease_ms=5000, wait_ms=200)
        await eventually(lambda: listener.termed == 1)
        listener.stop()
        await listener
        [letter] = [letter async for letter in kv.queue("orders").dlq()]
        assert (letter.attempts, letter.reason, letter.last_error) == (1, "term", "not a valid order")
        assert list(await kv.queue_stats()) == ["orders"]  # no other group was made


async def test_a_stale_workers_answers_are_fenced_and_change_nothing(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.enqueue("job", backoff_schedule=[0, 0])
        queue = kv.queue()
        [stale] = await queue.lease("slow-worker", lease_ms=1000)
        fresh: list[QueueMessage] = []
        deadline = time.monotonic() + 15
        while not fresh and time.monotonic() < deadline:  # the lease expires; another worker gets it
            fresh = await queue.lease("fast-worker", lease_ms=10_000, wait_ms=500)
        assert fresh and fresh[0].id == stale.id and fresh[0].attempt == 2
        with pytest.raises(Fenced):
            await queue.ack(stale.token, kv.atomic().set(("effect",), "stale"))
        with pytest.raises(Fenced):
            await queue.nack(stale.token, "too late")
        with pytest.raises(Fenced):
            await queue.extend(stale.token)
        assert (await kv.get(("effect",))).value is None
        assert (await queue.ack(fresh[0].token, kv.atomic().set(("effect",), "fresh"))).ok
        assert (await kv.get(("effect",))).value == "fresh"


async def test_a_failed_check_in_an_ack_keeps_the_lease(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.set(("exists",), 1)
        await kv.enqueue("job")
        queue = kv.queue()
        [message] = await queue.lease("w", lease_ms=10_000)
        refused = await queue.ack(message.token, kv.atomic().check(("exists",), None).set(("effect",), 1))
        assert not refused.ok and (await kv.get(("effect",))).value is None
        assert (await queue.ack(message.token, kv.atomic().set(("effect",), 2))).ok  # still ours


async def test_reset_replays_a_group(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        for i in range(3):
            await kv.enqueue(i)
        queue = kv.queue("replay")
        seen = []
        for _ in range(3):
            [message] = await queue.lease("w", wait_ms=1000)
            seen.append(message.value)
            await queue.ack(message.token)
        assert await queue.lease("w") == []
        await queue.reset("-1")
        again = [m.value for m in await queue.lease("w", max_messages=10, wait_ms=1000)]
        assert seen == [0, 1, 2] and again == [0, 1, 2]
        assert "replay" in await kv.queue_stats()


def test_the_sync_listener(shared_origin: OriginProcess) -> None:
    with SyncStreams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        for i in range(5):
            kv.enqueue(i)

        def handle(message: QueueMessage) -> AtomicBuilder:
            return kv.atomic().set(("done", message.value), True)  # committed with the ack

        listener = kv.listen_queue(handle, concurrency=2, lease_ms=5000, wait_ms=200)
        deadline = time.monotonic() + 20
        while len(list(kv.list(("done",)))) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        listener.stop()
        listener.wait(10)
        assert [entry.key for entry in kv.list(("done",))] == [("done", i) for i in range(5)]
        assert kv.queue().stats().depth == 0


async def test_the_heartbeat_keeps_a_long_handlers_lease(shared_origin: OriginProcess) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.enqueue("slow job", backoff_schedule=[0])
        attempts: list[int] = []

        async def handle(message: QueueMessage) -> None:
            attempts.append(message.attempt)
            await asyncio.sleep(2.5)  # 2.5 leases long: only the heartbeat's extends keep it

        listener = kv.listen_queue(handle, lease_ms=1000, wait_ms=200)
        await eventually(lambda: listener.acked == 1)
        listener.stop()
        await listener
        assert attempts == [1] and listener.fenced == 0


async def test_a_fenced_ack_is_logged_and_skipped(
    shared_origin: OriginProcess, caplog: pytest.LogCaptureFixture
) -> None:
    async with Streams(shared_origin.url) as streams:
        kv = streams.kv(db_name())
        await kv.enqueue("job")
        release = asyncio.Event()
        values: list[int] = []

        async def handle(message: QueueMessage) -> AtomicOperation:
            values.append(message.attempt)
            if len(values) == 1:
                await release.wait()  # the group is reset meanwhile: this lease is fenced
            return kv.atomic().sum(("effects",), 1)

        listener = kv.listen_queue(handle, lease_ms=5000, wait_ms=200)
        await eventually(lambda: len(values) == 1)
        await kv.queue().reset("-1")
        release.set()
        await eventually(lambda: listener.fenced == 1 and listener.acked == 1)
        listener.stop()
        await listener
        assert int((await kv.get(("effects",))).value) == 1  # the fenced answer committed nothing
        assert "no longer ours" in caplog.text


async def test_an_origin_sigkill_mid_run_loses_nothing_and_applies_nothing_twice(processes: Processes) -> None:
    origin = processes.origin()
    port = urlsplit(origin.url).port
    total = 150
    async with Streams(origin.url, retry_for=60) as streams:
        kv = streams.kv(db_name())
        for start in range(0, total, 50):
            op = kv.atomic()
            for n in range(start, start + 50):
                op.enqueue(n, backoff_schedule=[100] * 9)
            await op.commit()

        async def handle(message: QueueMessage) -> AtomicOperation:
            await asyncio.sleep(0.01)
            # A second effect for the same message would fail this check (and be nacked).
            return kv.atomic().check(("done", message.value), None).set(("done", message.value), message.id)

        listener = kv.listen_queue(handle, concurrency=4, lease_ms=2000, wait_ms=200)
        await eventually(lambda: listener.acked >= 40)
        origin.kill()  # SIGKILL, leases and answers in flight
        await asyncio.sleep(0.5)
        restarted = OriginProcess(origin.data_dir, "--port", str(port))
        processes.started.append(restarted)
        await asyncio.to_thread(restarted.start)

        async def finished() -> bool:
            return await count_under(kv, ("done",)) == total and (await kv.queue().stats()).in_flight == 0

        deadline = time.monotonic() + 40
        while not await finished():
            assert time.monotonic() < deadline, processes.logs()
            await asyncio.sleep(0.2)
        listener.stop()
        await listener
        done = {entry.key[1]: entry.value async for entry in kv.list(("done",), batch_size=1000)}
        assert sorted(done) == list(range(total))
        assert [letter async for letter in kv.queue().dlq()] == []
        print(f"queue across an origin SIGKILL: {total} messages, lost 0, effects applied twice 0")
