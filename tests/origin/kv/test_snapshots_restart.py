"""KV snapshots with real origin processes: start-up after 50,000 commits with and without a
snapshot (both times printed), SIGKILL right after a snapshot and while snapshots are being
written, a torn temporary file, and snapshots that must be refused (corrupt, another database's,
ahead of the log). After every restart the state (keys, versionstamps, queue stats, DLQ and the
log's tail) is the one before it.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.origin.kv.conftest import KvApi
from tests.support.processes import OriginProcess, ProcessGroup, process_group

DB = "app"
KEYS = 10_000
#: Periodic snapshots off: only a clean shutdown writes one.
NO_PERIODIC = ("--kv-snapshot-events", "100000000", "--kv-snapshot-seconds", "86400")
_LOADED = re.compile(r"KV database (\S+) loaded in ([0-9.]+) s: (no snapshot|snapshot at \S+), then (\d+) events")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, long_poll_timeout=1.0) as started:
        yield started


def _mutations(i: int, pad: int) -> list[dict[str, Any]]:
    """Commit `i`: a set over a rotating key space, and now and then a sum, an enqueue or a delete."""
    mutations: list[dict[str, Any]] = [{"type": "set", "key": ["k", i % KEYS], "value": {"i": i, "pad": "x" * pad}}]
    if i % 10 == 0:
        mutations.append({"type": "sum", "key": ["n"], "value": {"$u64": "1"}})
    if i % 100 == 0:
        mutations.append({"type": "enqueue", "value": {"job": i}})
    if i % 1000 == 999:
        mutations.append({"type": "delete", "key": ["k", (i + 1) % KEYS]})
    return mutations


async def commit_many(
    api: KvApi, commits: range, concurrency: int = 64, acknowledged: list[int] | None = None, pad: int = 40
) -> None:
    pending = iter(commits)

    async def worker() -> None:
        for i in pending:
            status, answer = await api.atomic(_mutations(i, pad))
            assert status == 200, (i, status, answer)
            if acknowledged is not None:
                acknowledged.append(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def queue_traffic(api: KvApi) -> None:
    """Give group g every state a message can have: acked, dead-lettered, in flight and waiting."""
    leased = await api.lease("g", max=20, leaseMs=600_000)
    assert len(leased) == 20
    for message in leased[:10]:
        await api.ok("POST", "/queue/groups/g/ack", body={"token": message["token"]})
    await api.ok("POST", "/queue/groups/g/term", body={"token": leased[10]["token"], "error": "poison"})


async def observe(api: KvApi) -> dict[str, Any]:
    """What a client can see of the database, minus what moves with the clock (oldest message age)."""
    stats = await api.ok("GET", "/queue/stats")
    for group in stats["groups"].values():
        group.pop("oldestAgeMs")
    return {
        "keys": await api.list_all(1000, prefix=["k"]),
        "n": await api.get(["n"]),
        "stats": stats,
        "dlq": {group: await api.ok("GET", f"/queue/groups/{group}/dlq") for group in stats["groups"]},
        "tail": await api.tail(),
    }


def last_load(origin: OriginProcess) -> tuple[float, str, int]:
    """(seconds, "no snapshot" or "snapshot at O", events replayed) of the database's latest load."""
    found = [m for m in _LOADED.finditer(origin.log_path.read_text()) if m.group(1) == DB]
    assert found, origin.log_path.read_text()[-3000:]
    return float(found[-1].group(2)), found[-1].group(3), int(found[-1].group(4))


def snapshot_file(data: Path, db: str = DB) -> Path:
    return data / "kv" / f"{db}.snapshot"


async def restart(processes: ProcessGroup, data: Path, *flags: str) -> tuple[OriginProcess, float]:
    """A new origin on `data` and the seconds from its start to serving (the KV load comes first)."""
    started = time.monotonic()
    origin = await processes.aorigin(*flags, data_dir=data)
    return origin, time.monotonic() - started


async def test_start_up_after_50000_commits_with_and_without_a_snapshot(
    processes: ProcessGroup, http: aiohttp.ClientSession
) -> None:
    data = processes.tmp_path / "data"
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    api = KvApi(http, origin.url, DB)
    await api.ok("PUT", "/queue/groups/g", body={"from": "-1"})
    await commit_many(api, range(50_000))
    await queue_traffic(api)
    before = await observe(api)
    assert len(before["keys"]) > 9_900 and before["stats"]["groups"]["g"]["dlq"] == 1

    origin.kill()
    assert not snapshot_file(data).exists()
    origin, replay_wall = await restart(processes, data, *NO_PERIODIC)
    replay_load, source, replayed = last_load(origin)
    assert source == "no snapshot" and replayed > 50_000  # the commits, and the queue's events
    assert await observe(KvApi(http, origin.url, DB)) == before

    assert origin.stop() == 0  # a clean shutdown writes the snapshot
    assert snapshot_file(data).exists()
    origin, snapshot_wall = await restart(processes, data, *NO_PERIODIC)
    snapshot_load, source, replayed = last_load(origin)
    assert source.startswith("snapshot at") and replayed == 0
    assert await observe(KvApi(http, origin.url, DB)) == before
    print(
        f"\nstart-up after 50,000 commits ({snapshot_file(data).stat().st_size} B snapshot): "
        f"full replay {replay_load:.3f} s to load ({replay_wall:.2f} s to serve), "
        f"from the snapshot {snapshot_load:.3f} s to load ({snapshot_wall:.2f} s to serve)"
    )
    assert snapshot_load < replay_load


async def wait_for_snapshot(origin: OriginProcess, after: int, timeout_s: float = 20.0) -> str:
    """The offset of the first snapshot the origin logs after the log's first `after` bytes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"snapshot at (\S+) written", origin.log_path.read_text()[after:])
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError("no snapshot was written")


async def test_sigkill_right_after_a_snapshot_replays_only_the_events_after_it(
    processes: ProcessGroup, http: aiohttp.ClientSession
) -> None:
    data = processes.tmp_path / "data"
    flags = ("--kv-snapshot-events", "500", "--kv-snapshot-seconds", "86400")
    origin = await processes.aorigin(*flags, data_dir=data)
    api = KvApi(http, origin.url, DB)
    await commit_many(api, range(1_200), concurrency=8)
    await asyncio.sleep(0.5)  # the sweeper (every 0.25 s) starts the snapshot of the last 500
    mark = len(origin.log_path.read_text())
    await commit_many(api, range(1_200, 1_700), concurrency=8)
    snapshot_at = await wait_for_snapshot(origin, mark)
    await commit_many(api, range(1_700, 1_730), concurrency=1)
    before = await observe(api)
    origin.kill()
    origin, _ = await restart(processes, data, *flags)
    _, source, replayed = last_load(origin)
    assert source.startswith("snapshot at")
    assert source >= f"snapshot at {snapshot_at}" and 30 <= replayed < 530
    assert await observe(KvApi(http, origin.url, DB)) == before


async def test_sigkill_while_snapshots_are_written_never_loses_a_commit(
    processes: ProcessGroup, http: aiohttp.ClientSession
) -> None:
    """Snapshots of a 10,000-key database every 100 commits, and SIGKILLs at random moments: each
    restart serves every acknowledged commit, and what it rebuilt from its snapshot equals a full replay."""
    data = processes.tmp_path / "data"
    flags = ("--kv-snapshot-events", "100", "--kv-snapshot-seconds", "86400")
    origin = await processes.aorigin(*flags, data_dir=data)
    api = KvApi(http, origin.url, DB)
    await commit_many(api, range(KEYS), pad=2000)  # a 20 MB snapshot: writing it takes a while
    done = KEYS
    randomness = random.Random(14)
    torn = 0
    for _ in range(3):
        acknowledged: list[int] = []
        writing = asyncio.ensure_future(commit_many(api, range(done, done + 100_000), 16, acknowledged, pad=2000))
        await asyncio.sleep(randomness.uniform(0.5, 2.0))
        origin.kill()
        torn += (data / "kv" / f"{DB}.snapshot.tmp").exists()
        try:
            await writing
        except (AssertionError, aiohttp.ClientError):
            pass  # the commits in flight at the kill
        origin, _ = await restart(processes, data, *flags)
        api = KvApi(http, origin.url, DB)
        from_snapshot = await observe(api)
        _, source, _ = last_load(origin)
        assert source.startswith("snapshot at")
        values = {entry["key"][1]: entry["value"]["i"] for entry in from_snapshot["keys"]}
        lost = [i for i in acknowledged if values.get(i % KEYS, -1) < i and i % 1000 != 0]
        assert acknowledged and not lost  # (keys 0, 1000, ... are also deleted now and then)
        done = max(values.values()) + 1
        origin.kill()
        kept = snapshot_file(data).with_suffix(".kept")
        snapshot_file(data).rename(kept)
        origin, _ = await restart(processes, data, *flags)
        assert last_load(origin)[1] == "no snapshot"
        assert await observe(KvApi(http, origin.url, DB)) == from_snapshot
        origin.kill()
        kept.rename(snapshot_file(data))
        origin, _ = await restart(processes, data, *flags)
        api = KvApi(http, origin.url, DB)
    print(f"\n3 SIGKILLs while snapshots were written; {torn} left a torn temporary file; none lost a commit")


async def test_a_torn_temporary_file_is_ignored(processes: ProcessGroup, http: aiohttp.ClientSession) -> None:
    data = processes.tmp_path / "data"
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    api = KvApi(http, origin.url, DB)
    await commit_many(api, range(300))
    assert origin.stop() == 0
    whole = snapshot_file(data).read_bytes()
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    await commit_many(KvApi(http, origin.url, DB), range(300, 340), concurrency=4)
    before = await observe(KvApi(http, origin.url, DB))
    origin.kill()
    # As if killed while writing the next snapshot: its temporary file holds half of one.
    (data / "kv" / f"{DB}.snapshot.tmp").write_bytes(whole[: len(whole) // 2])
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    _, source, replayed = last_load(origin)
    assert source.startswith("snapshot at") and replayed == 40
    assert await observe(KvApi(http, origin.url, DB)) == before


async def test_refused_snapshots_fall_back_to_a_full_replay(
    processes: ProcessGroup, http: aiohttp.ClientSession
) -> None:
    """A corrupt snapshot, another database's, and one ahead of the log are each logged and ignored."""
    data = processes.tmp_path / "data"
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    await commit_many(KvApi(http, origin.url, DB), range(200))
    await commit_many(KvApi(http, origin.url, "other"), range(100))
    assert origin.stop() == 0
    older = processes.tmp_path / "older"
    shutil.copytree(data, older)
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    await commit_many(KvApi(http, origin.url, DB), range(200, 260))
    before = await observe(KvApi(http, origin.url, DB))
    assert origin.stop() == 0
    newer = snapshot_file(data).read_bytes()

    corrupt = bytearray(newer)
    corrupt[len(corrupt) // 2] ^= 0x40
    snapshot_file(data).write_bytes(bytes(corrupt))
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    assert last_load(origin)[1:] == ("no snapshot", 260)
    assert "checksum mismatch" in origin.log_path.read_text()
    assert await observe(KvApi(http, origin.url, DB)) == before
    origin.kill()

    shutil.copy(snapshot_file(data, "other"), snapshot_file(data))
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=data)
    assert last_load(origin)[1:] == ("no snapshot", 260)
    assert await observe(KvApi(http, origin.url, DB)) == before
    origin.kill()

    # The older data directory with the newer snapshot: the log lost what the snapshot saw.
    older_before_log = older.with_name("older.origin.log")
    snapshot_file(older).write_bytes(newer)
    origin = await processes.aorigin(*NO_PERIODIC, data_dir=older)
    assert last_load(origin)[1:] == ("no snapshot", 200)
    assert "ahead of the change stream" in older_before_log.read_text()
    assert len((await observe(KvApi(http, origin.url, DB)))["keys"]) == 200
