"""A KV watch survives SIGKILLs of its watcher: every commit is processed exactly once, in commit order.

Real processes: an origin; 16 concurrent HTTP writers (this test) make 10,000 atomic commits while a
watcher process (tests/support/kv_watcher.py) reads the change stream and is SIGKILLed and
restarted at random moments, resuming from the offset it saved with each processed event. The
watcher reads the origin directly, through an edge, or from a regional replica that follows the
origin, with long-polls or with SSE (each pair is a run). Every commit sets its own key and adds 1
to `["commits"]`, so the k-th commit in versionstamp order must show the sum k: the order is checked
by the values themselves.

Verified against what the origin acknowledged: the watcher recorded exactly the acknowledged
commits (versionstamp, offset, changes), in versionstamp order, none twice, none missing.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.shared.aio.tasks import spawn
from tests.edge.support import metric, scrape
from tests.support.processes import ProcessGroup, ServerProcess, process_group

ROOT = Path(__file__).resolve().parents[3]
COMMITS = 10_000
WRITERS = 16
DB = "crashwatch"
pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Ack:
    """A commit as the origin acknowledged it, and the changes its event must carry."""

    versionstamp: str
    offset: str
    key: list[str]
    value: dict[str, object]


class Watcher:
    """The watcher process, SIGKILLed and restarted on demand; its record is an SQLite file."""

    def __init__(self, server_url: str, live: str, store: Path) -> None:
        self.server_url, self.live = server_url, live
        self.store = store
        self.log_path = store.with_suffix(".log")
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        log = await asyncio.to_thread(open, self.log_path, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.kv_watcher", self.server_url, DB, str(self.store), self.live,
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        finally:
            log.close()

    async def kill_and_restart(self) -> bool:
        """SIGKILL and start again; False (and no restart) if it had just finished on its own."""
        assert self.proc is not None
        self.proc.kill()
        if await self.proc.wait() == 0:
            return False
        self.kills += 1
        await self.start()
        return True

    async def exited(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


async def commit(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> dict[str, object]:
    for _ in range(50):
        async with session.post(url, json=body) as response:
            answer = await response.json()
            if response.status == 200:
                return dict(answer)
            assert response.status == 503, f"POST {url}: {response.status} {answer}"
        await asyncio.sleep(0.05)  # overloaded: try again shortly
    raise AssertionError(f"POST {url}: still 503")


async def write(origin_url: str) -> list[Ack]:
    """COMMITS atomic commits from WRITERS concurrent clients; then the end marker. The acks, all."""
    url = f"{origin_url}/kv/api/v1/{DB}/atomic"
    numbers = iter(range(COMMITS))
    acks: list[Ack] = []

    async def writer(session: aiohttp.ClientSession, client: int) -> None:
        for i in numbers:
            key, value = ["w", f"{i:05d}"], {"i": i, "client": client}
            mutations = [{"type": "set", "key": key, "value": value}, {"type": "sum", "key": ["commits"], "value": 1}]
            answer = await commit(session, url, {"checks": [], "mutations": mutations})
            acks.append(Ack(str(answer["versionstamp"]), str(answer["offset"]), key, value))

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=WRITERS)) as session:
        await asyncio.gather(*(writer(session, client) for client in range(WRITERS)))
        end = await commit(session, url, {"checks": [], "mutations": [{"type": "set", "key": ["end"], "value": 1}]})
    acks.sort(key=lambda ack: ack.versionstamp)
    acks.append(Ack(str(end["versionstamp"]), str(end["offset"]), ["end"], {}))
    return acks


async def keep_killing(watcher: Watcher, rng: random.Random) -> None:
    """SIGKILL and restart the watcher at random moments until it finishes on its own (the end marker)."""
    while True:
        try:
            async with asyncio.timeout(rng.uniform(0.03, 0.4)):
                await watcher.exited()
            return
        except TimeoutError:
            if not await watcher.kill_and_restart():
                return


def expected_changes(ack: Ack, position: int) -> list[object]:
    """The changes of the commit at `position` (1-based) in versionstamp order, as the watcher stores them."""
    if ack.key == ["end"]:
        return [{"key": ["end"], "op": "set", "value": 1, "expireAt": None}]
    sum_change = {"key": ["commits"], "op": "set", "value": {"$u64": str(position)}, "expireAt": None}
    own = {"key": ack.key, "op": "set", "value": ack.value, "expireAt": None}
    return sorted([own, sum_change], key=lambda change: json.dumps(change, sort_keys=True))


def recorded(store: Path) -> list[tuple[str, str, list[object]]]:
    with sqlite3.connect(store) as connection:
        rows = connection.execute("SELECT versionstamp, event_offset, changes FROM processed ORDER BY seq").fetchall()
    return [(vs, offset, json.loads(changes)) for vs, offset, changes in rows]


def normalised(changes: list[object]) -> list[object]:
    return sorted(json.loads(json.dumps(changes)), key=lambda change: json.dumps(change, sort_keys=True))


def watch_endpoint(servers: ProcessGroup, route: str, origin: ServerProcess) -> str:
    """The server the watcher reads: the origin, an edge in front of it, or a regional replica of it."""
    if route == "origin":
        return origin.url
    if route == "edge":
        return servers.edge(origin.url).url
    replica_dir = servers.tmp_path / "replica"
    return servers.edge(origin.url, "--region", "eu", "--replica-dir", str(replica_dir), "--replicate", "__kv/**").url


@pytest.mark.parametrize("live", ["long-poll", "sse"])
@pytest.mark.parametrize("route", ["origin", "edge", "replica"])
async def test_a_watcher_killed_at_random_processes_every_commit_once_in_order(
    tmp_path: Path, route: str, live: str
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    with process_group(tmp_path, long_poll_timeout=1.0) as servers:
        origin = await servers.aorigin()
        endpoint = await asyncio.to_thread(watch_endpoint, servers, route, origin)
        watcher = Watcher(endpoint, live, tmp_path / "watcher.sqlite")
        started = time.monotonic()
        await watcher.start()
        killer = spawn(keep_killing(watcher, rng), name="watcher killer")
        try:
            acks = await write(origin.url)
            try:
                async with asyncio.timeout(60):
                    await killer
            except TimeoutError:
                rows = await asyncio.to_thread(recorded, watcher.store)
                raise AssertionError(
                    f"the watcher did not finish within 60 s of the last commit: {len(rows)} of {len(acks)} "
                    f"recorded, the last at {rows[-1][1] if rows else None}, the tail at {acks[-1].offset}; "
                    f"its log:\n{watcher.log()}"
                ) from None
            code = await watcher.exited()
        finally:
            killer.cancel()
            watcher.stop()
        seconds = time.monotonic() - started
        assert code == 0, f"watcher exited {code}:\n{watcher.log()}"
        if route == "replica":
            async with aiohttp.ClientSession() as session:
                local_reads = metric(await scrape(session, endpoint), "ds_region_local_reads_total", region="eu")
            assert local_reads > 0, "the replica passed every read to the origin instead of serving its copy"

    rows = await asyncio.to_thread(recorded, watcher.store)
    seen = Counter(vs for vs, _, _ in rows)
    acked = {ack.versionstamp for ack in acks}
    lost = len(acked - seen.keys())
    duplicated = sum(count - 1 for count in seen.values())
    print(
        f"\nKV watch via {route}, {live} (seed {seed}): commits {len(acks) - 1} (+1 end marker), watcher kills "
        f"{watcher.kills}, lost {lost}, duplicated {duplicated}, unknown {len(seen.keys() - acked)}, "
        f"{seconds:.1f} s"
    )
    assert lost == 0 and duplicated == 0 and seen.keys() == acked
    assert [vs for vs, _, _ in rows] == [ack.versionstamp for ack in acks]  # commit order
    assert watcher.kills >= 5, "the run was too short to kill the watcher often"
    for position, ((_, offset, changes), ack) in enumerate(zip(rows, acks, strict=True), start=1):
        assert offset == ack.offset, f"commit {position}: event offset {offset}, acknowledged {ack.offset}"
        assert normalised(changes) == expected_changes(ack, position), f"commit {position} ({ack.versionstamp})"
