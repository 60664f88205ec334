"""A KV queue under crashes: every message is processed exactly once, the poison message is dead-lettered.

Real processes: an origin; 8 worker processes (tests/support/kv_worker.py) that process each
message by acking it with a KV atomic recording the effect (`["done", <id>]`, `sum ["count"]`);
this test enqueues 10,000 messages (idempotently: each batch's commit checks and sets its own
`["enq", <batch>]` key, so a batch retried after a crash is never enqueued twice) while it
SIGKILLs random workers and restarts them, and SIGKILLs the origin once mid-run and restarts it
on the same data directory (the workers find its new URL in a file). One message is poison: it
kills every worker that takes it, so it must reach the DLQ after its 3 attempts (backoffSchedule
[100, 100], 1 s leases) with its original offset. A worker stopped (SIGSTOP) past its lease while
another worker processes its message is continued (SIGCONT): its ack must be refused (409 FENCED)
and change nothing.

Verified from the change stream itself (every committed effect is an event in it): each message
but the poison one has exactly one `["done", id]` set, `["count"]` equals their number, and the
processed values are exactly the enqueued ones (every acknowledged enqueue among them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from plugin_streams.shared.aio.tasks import spawn
from tests.edge.support import until
from tests.support.processes import OriginProcess, process_group

ROOT = Path(__file__).resolve().parents[3]
MESSAGES = 10_000
BATCH = 100
WORKERS = 8
POISON = 4_321
DB = "crashqueue"
GROUP = "g"
POISON_SCHEDULE = [100, 100]  # 3 attempts
ORDINARY_SCHEDULE = [100] * 9  # 10 attempts: random kills never exhaust them
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
pytestmark = pytest.mark.timeout(120)


@dataclass
class Run:
    """The moving parts: the origin's current URL (also in the workers' url file), and the figures."""

    origin: OriginProcess
    url_file: Path
    session: aiohttp.ClientSession
    acknowledged: set[int] = field(default_factory=set)  # n of every message whose enqueue was acknowledged
    worker_kills: int = 0
    deaths: int = 0  # workers that died without being killed here: the poison's victims
    origin_kills: int = 0
    retried: int = 0  # this test's requests sent again because the origin died under them
    committed_unanswered: int = 0  # enqueue batches committed whose answer the crash swallowed

    @property
    def kv(self) -> str:
        return f"{self.origin.url}/kv/api/v1/{DB}"

    async def publish_url(self) -> None:
        def write() -> None:
            tmp = self.url_file.with_suffix(".tmp")
            tmp.write_text(self.origin.url)
            os.replace(tmp, self.url_file)

        await asyncio.to_thread(write)

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One KV API request, retried over the origin's crash and restart; status and JSON answer."""
        for _ in range(600):
            try:
                async with self.session.request(method, self.kv + path, **kwargs) as response:
                    if response.status != 503:
                        return response.status, await response.json()
            except CONNECTION_ERRORS:
                self.retried += 1
            await asyncio.sleep(0.05)
        raise AssertionError(f"{method} {path}: no answer for 30 s")

    async def get(self, key: list[object]) -> Any:
        status, answer = await self.request("GET", "/keys?key=" + quote(json.dumps(key)))
        assert status == 200, answer
        return answer["value"]

    async def count(self) -> int:
        value = await self.get(["count"])
        return 0 if value is None else int(value["$u64"])


class Worker:
    """One worker process; `kv_worker.py` arguments after the url file."""

    def __init__(self, run: Run, name: str, *flags: str) -> None:
        self.run, self.name, self.flags = run, name, flags
        self.log = run.url_file.with_name(f"{name}.jsonl")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Worker:
        stderr = await asyncio.to_thread(open, self.log.with_suffix(".err"), "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.kv_worker",
                str(self.run.url_file), DB, GROUP, self.name, str(self.log), *self.flags,
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            )  # fmt: skip
        finally:
            stderr.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    async def outcomes(self) -> list[dict[str, Any]]:
        text = await asyncio.to_thread(lambda: self.log.read_text() if self.log.exists() else "")
        return [json.loads(line) for line in text.splitlines()]

    async def has_outcomes(self) -> bool:
        return bool(await self.outcomes())

    async def errors(self) -> str:
        return await asyncio.to_thread(self.log.with_suffix(".err").read_text, errors="replace")


# -- producing ------------------------------------------------------------------------------


def batch_commit(batch: int) -> dict[str, object]:
    enqueues = []
    for n in range(batch * BATCH, (batch + 1) * BATCH):
        poison = n == POISON
        value = {"n": n, "poison": True} if poison else {"n": n}
        schedule = POISON_SCHEDULE if poison else ORDINARY_SCHEDULE
        enqueues.append({"type": "enqueue", "value": value, "backoffSchedule": schedule})
    marker = ["enq", batch]
    return {
        "checks": [{"key": marker, "versionstamp": None}],
        "mutations": [{"type": "set", "key": marker, "value": 1}, *enqueues],
    }


async def produce(run: Run) -> None:
    """Enqueue every message, a batch at a time; a batch whose answer was lost is sent again (its check
    makes that idempotent: 409 means the first try was committed)."""
    for batch in range(MESSAGES // BATCH):
        status, answer = await run.request("POST", "/atomic", json=batch_commit(batch))
        assert status in (200, 409), (status, answer)
        if status == 200:
            assert len(answer["enqueued"]) == BATCH
            run.acknowledged.update(range(batch * BATCH, (batch + 1) * BATCH))
        else:
            run.committed_unanswered += 1
        await asyncio.sleep(0.005)


# -- crashing -------------------------------------------------------------------------------


async def supervise(run: Run, workers: list[Worker], rng: random.Random, stop: asyncio.Event) -> None:
    """SIGKILL a random worker now and then; restart any worker that died (killed, or by the poison)."""
    next_kill = time.monotonic() + rng.uniform(0.2, 0.8)
    while not stop.is_set():
        for i, worker in enumerate(workers):
            assert worker.proc is not None
            if worker.proc.returncode is None:
                continue
            assert worker.proc.returncode == -signal.SIGKILL, f"{worker.name} failed:\n{await worker.errors()}"
            run.deaths += 1
            workers[i] = await Worker(run, f"{worker.name}.r").start()
        if time.monotonic() >= next_kill:
            victim = rng.randrange(len(workers))
            worker = workers[victim]
            assert worker.proc is not None
            if worker.proc.returncode is None:
                try:
                    worker.proc.kill()
                except ProcessLookupError:  # it just died by itself: restarted on the next round
                    continue
                await worker.proc.wait()
                run.worker_kills += 1
                workers[victim] = await Worker(run, f"{worker.name}.k").start()
            next_kill = time.monotonic() + rng.uniform(0.2, 0.8)
        await asyncio.sleep(0.05)


async def kill_origin_halfway(run: Run) -> None:
    """SIGKILL the origin once half of the messages are enqueued (the producer and workers busy), and
    restart it on the same data directory."""

    async def half_enqueued() -> bool:
        return len(run.acknowledged) >= MESSAGES // 2

    await until(half_enqueued, 60, "half of the messages to be enqueued", interval=0.02)
    run.origin.kill()
    run.origin_kills += 1
    await asyncio.to_thread(run.origin.start)  # the same data directory, a new port
    await run.publish_url()


# -- the stale worker -----------------------------------------------------------------------


async def stale_ack_is_fenced(run: Run, stale: Worker) -> str:
    """The stale worker leased a message and stopped itself; once another worker has processed that
    message, continue it: its ack must be refused and change nothing. Returns the message id."""
    message_id = (await stale.outcomes())[0]["id"]

    async def done_elsewhere() -> bool:
        return await run.get(["done", message_id]) is not None

    await until(done_elsewhere, 20, f"another worker to process {message_id} (stale lease)", interval=0.1)
    assert stale.proc is not None and stale.proc.returncode is None
    status = await asyncio.to_thread(Path(f"/proc/{stale.proc.pid}/stat").read_text)
    assert status.rsplit(")", 1)[1].split()[0] == "T", "the stale worker was not stopped while its lease lapsed"
    done_before, count_before = await run.get(["done", message_id]), await run.count()
    stale.proc.send_signal(signal.SIGCONT)
    async with asyncio.timeout(30):
        assert await stale.proc.wait() == 0, await stale.errors()
    answer = (await stale.outcomes())[-1]
    assert answer["status"] == 409 and answer["answer"]["error"]["code"] == "FENCED", answer
    assert await run.get(["done", message_id]) == done_before  # the refused ack's effect is not there
    assert done_before["worker"] != stale.name
    assert await run.count() >= count_before
    return str(message_id)


# -- verifying ------------------------------------------------------------------------------


async def change_events(run: Run) -> list[dict[str, Any]]:
    """Every event of the database's change stream, from the start to the tail."""
    url, offset, events = f"{run.origin.url}/v1/stream/__kv/{DB}", "-1", []
    while True:
        async with run.session.get(url, params={"offset": offset}) as response:
            assert response.status == 200, (response.status, await response.text())
            events += await response.json()
            offset = response.headers["Stream-Next-Offset"]
            if response.headers.get("Stream-Up-To-Date") == "true":
                return events


async def dead_letters(run: Run) -> list[dict[str, Any]]:
    status, answer = await run.request("GET", f"/queue/groups/{GROUP}/dlq")
    assert status == 200, answer
    return list(answer["entries"])


async def test_queue_workers_killed_at_random_process_every_message_once_and_dead_letter_the_poison(
    tmp_path: Path,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    started = time.monotonic()
    with process_group(tmp_path, long_poll_timeout=1.0) as servers:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40)) as session:
            run = Run(await servers.aorigin(), tmp_path / "origin.url", session)
            await run.publish_url()
            status, answer = await run.request("PUT", f"/queue/groups/{GROUP}", json={"from": "-1"})
            assert status == 201, answer
            producer = spawn(produce(run), name="producer")
            crasher = spawn(kill_origin_halfway(run), name="origin crasher")
            stale = await Worker(run, "stale", "--stale").start()
            workers: list[Worker] = []
            stop = asyncio.Event()
            supervisor: asyncio.Task[None] | None = None
            try:
                await until(stale.has_outcomes, 20, "the stale worker to lease", interval=0.1)
                workers += [await Worker(run, f"w{i}").start() for i in range(WORKERS)]
                supervisor = spawn(supervise(run, workers, rng, stop), name="worker supervisor")
                stale_id = await stale_ack_is_fenced(run, stale)
                await crasher
                await producer

                async def all_processed() -> bool:
                    return await run.count() >= MESSAGES - 1 and len(await dead_letters(run)) >= 1

                await until(all_processed, 80, "every message processed, the poison dead-lettered", interval=0.1)
                await asyncio.sleep(1.5)  # anything still in flight (a duplicate, a second dead letter) lands now
                stop.set()
                await supervisor
            finally:
                stop.set()
                producer.cancel()
                crasher.cancel()
                if supervisor is not None:
                    supervisor.cancel()
                for worker in [stale, *workers]:
                    worker.stop()
            seconds = time.monotonic() - started
            fenced = await asyncio.to_thread(fenced_acks, tmp_path)
            poison_takes = await asyncio.to_thread(poison_attempts, tmp_path)
            events = await change_events(run)
            dlq = await dead_letters(run)
            count = await run.count()

    enqueued = {entry["id"]: (entry["value"]["n"], event["offset"]) for event in events for entry in event["enqueued"]}
    done_sets = [
        (change["key"][1], change["value"]["n"])
        for event in events
        for change in event["changes"]
        if change["key"][0] == "done" and change["op"] == "set"
    ]
    processed = Counter(n for _, n in done_sets)
    lost = len(run.acknowledged - {POISON} - processed.keys())
    duplicated = sum(times - 1 for times in processed.values()) + len(done_sets) - len({i for i, _ in done_sets})
    figures = [
        f"messages {len(enqueued)} ({len(run.acknowledged)} acknowledged enqueues, "
        f"{run.committed_unanswered} batches committed unanswered)",
        f"workers {WORKERS}",
        f"worker kills {run.worker_kills} (+{run.deaths} by the poison, at attempts {poison_takes})",
        f"origin kills {run.origin_kills}",
        f"processed {len(processed)}",
        f"lost {lost}",
        f"duplicated {duplicated}",
        f"DLQ entries {len(dlq)}",
        f"fenced acks {fenced} (1 stale)",
        f"requests retried over the origin crash {run.retried}",
        f"{seconds:.1f} s",
    ]
    print(f"\nKV queue (seed {seed}): " + ", ".join(figures))
    assert sorted(n for n, _ in enqueued.values()) == list(range(MESSAGES))  # each batch once, despite retries
    assert lost == 0 and duplicated == 0
    assert processed.keys() == set(range(MESSAGES)) - {POISON}
    assert count == len(done_sets) == MESSAGES - 1  # the sum moved with each effect, and only with it
    assert all(enqueued[message_id][0] == n for message_id, n in done_sets)
    assert stale_id in {message_id for message_id, _ in done_sets}
    poison_id = next(message_id for message_id, (n, _) in enqueued.items() if n == POISON)
    assert [(entry["id"], entry["attempts"], entry["reason"]) for entry in dlq] == [
        (poison_id, len(POISON_SCHEDULE) + 1, "attempts_exhausted")
    ]
    assert dlq[0]["offset"] == enqueued[poison_id][1]  # the offset of the commit that enqueued it
    assert dlq[0]["value"] == {"n": POISON, "poison": True}
    assert poison_takes == list(range(1, len(POISON_SCHEDULE) + 2))  # each attempt killed its worker
    assert run.worker_kills >= 5 and run.origin_kills == 1


def fenced_acks(directory: Path) -> int:
    """Acks refused as FENCED, in every worker's outcome log (a retried ack whose first try was applied,
    a lease that lapsed while its worker was slow, and the stale worker's)."""
    lines = (line for log in directory.glob("*.jsonl") for line in log.read_text().splitlines())
    return sum(1 for line in lines if json.loads(line).get("status") == 409)


def poison_attempts(directory: Path) -> list[int]:
    """The attempts at which workers took the poison message (and died), from their logs."""
    lines = (line for log in directory.glob("*.jsonl") for line in log.read_text().splitlines())
    return sorted(entry["attempt"] for entry in map(json.loads, lines) if entry.get("poison"))
