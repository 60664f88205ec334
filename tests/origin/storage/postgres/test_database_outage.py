"""The database goes away under load and comes back: 503 with Retry-After meanwhile, nothing lost, no restart.

A real origin process on a PostgreSQL server of the test's own (the session's shared server must
not be killed under other tests). Idempotent producers append without pause, retrying a 503 with
the same (epoch, seq). The server is SIGKILLed (postmaster and every backend, as when its host
dies), kept down a few seconds, then started again on the same data directory. Meanwhile every
append and read answers 503 with Retry-After, promptly: never a 500, never a hang. Once the
database is back the same origin process takes appends again within a bound, and every append
that was acknowledged (200, or 204 for a retry whose first attempt had in fact committed) is in
the stream exactly once, in order.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.headers import (
    CONTENT_TYPE,
    PRODUCER_EPOCH,
    PRODUCER_ID,
    PRODUCER_SEQ,
    RETRY_AFTER,
    STREAM_NEXT_OFFSET,
    STREAM_UP_TO_DATE,
)
from tests.support.postgres import PgServer, create_database, missing_postgres, require
from tests.support.processes import process_group

pytestmark = pytest.mark.timeout(120)


PRODUCERS = 4
#: Every request, during the outage too, must be answered within this many seconds.
REQUEST_BOUND = 15.0
#: Seconds the database stays down.
OUTAGE = 4.0
#: After the database accepts connections again, every producer gets an append acknowledged within this.
RECOVERY_BOUND = 15.0
#: A producer's pause before retrying a 503 (shorter than Retry-After, to time the recovery closely).
RETRY_PAUSE = 0.2
TOKEN = re.compile(rb"\[(p\d+):(\d+)\]")


@dataclass
class Load:
    """What the producers saw: acknowledged seqs with their time, 503s, anything that should not happen."""

    acknowledged: dict[str, list[int]] = field(default_factory=dict)
    acknowledged_at: list[float] = field(default_factory=list)
    unavailable: int = 0
    without_retry_after: Counter[str] = field(default_factory=Counter)  # 503s lacking Retry-After, by body
    slowest: float = 0.0
    bad: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _producer(session: aiohttp.ClientSession, url: str, who: str, load: Load) -> None:
    acknowledged = load.acknowledged.setdefault(who, [])
    seq = 0
    while not load.stop.is_set():
        headers = {CONTENT_TYPE: "text/plain", PRODUCER_ID: who, PRODUCER_EPOCH: "0", PRODUCER_SEQ: str(seq)}
        started = time.monotonic()
        try:
            async with session.post(url, data=f"[{who}:{seq}]", headers=headers) as reply:
                await reply.read()
        except TimeoutError:
            load.bad.append(f"{who}:{seq} unanswered after {REQUEST_BOUND} s")
            return
        load.slowest = max(load.slowest, time.monotonic() - started)
        if reply.status in (200, 204):
            acknowledged.append(seq)
            load.acknowledged_at.append(time.monotonic())
            seq += 1
        elif reply.status == 503:
            load.unavailable += 1
            if not reply.headers.get(RETRY_AFTER):
                load.without_retry_after[(await reply.text()).strip()] += 1
            await asyncio.sleep(RETRY_PAUSE)  # then the same seq again
        else:
            load.bad.append(f"{who}:{seq} got {reply.status}: {await reply.text()}")
            return


async def _read_all(session: aiohttp.ClientSession, url: str) -> bytes:
    content, offset = b"", "-1"
    while True:
        async with session.get(url, params={"offset": offset}) as response:
            assert response.status == 200, (response.status, await response.text())
            content += await response.read()
            offset = response.headers[STREAM_NEXT_OFFSET]
            if response.headers.get(STREAM_UP_TO_DATE) == "true":
                return content


async def _wait_for_acknowledgements(load: Load, after: float, count: int, bound: float) -> float:
    """Seconds from `after` until `count` appends were acknowledged after it; AssertionError past `bound`."""
    while True:
        later = [at for at in load.acknowledged_at if at > after]
        if len(later) >= count:
            return later[count - 1] - after
        assert time.monotonic() - after < bound, f"only {len(later)} appends acknowledged {bound} s after {after}"
        assert not load.bad, load.bad
        await asyncio.sleep(0.05)


async def test_appends_get_503_while_the_database_is_down_and_resume_without_a_restart(tmp_path: Path) -> None:
    require(missing_postgres())
    server = await asyncio.to_thread(PgServer.create, name="outage")
    try:
        dsn = await asyncio.to_thread(create_database, server)
        with process_group(tmp_path, long_poll_timeout=0.5) as group:
            origin = await group.aorigin("--engine", "postgres", "--database-url", dsn)
            figures, without_retry_after = await _run_outage(server, origin.stream_url + "outage/s")
            assert origin.proc is not None and origin.proc.poll() is None, "the origin must not have exited"
    finally:
        await asyncio.to_thread(server.close)
    print("\ndatabase outage: " + ", ".join(f"{key} {value}" for key, value in figures.items()))
    assert not without_retry_after, f"503s without Retry-After: {dict(without_retry_after)}"


async def _run_outage(server: PgServer, url: str) -> tuple[dict[str, str], Counter[str]]:
    """Load, kill, restart, check: (the figures, the 503s that lacked Retry-After by body)."""
    load = Load()
    timeout = aiohttp.ClientTimeout(total=REQUEST_BOUND)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.put(url, headers={CONTENT_TYPE: "text/plain"}) as created:
            assert created.status == 201
        producers = [spawn(_producer(session, url, f"p{i}", load), name=f"producer-{i}") for i in range(PRODUCERS)]
        try:
            await _wait_for_acknowledgements(load, time.monotonic(), 50, 10)
            acknowledged_before = len(load.acknowledged_at)
            await asyncio.to_thread(server.kill)
            killed_at = time.monotonic()
            await asyncio.sleep(OUTAGE / 2)
            assert load.unavailable > 0, "no append got a 503 while the database was down"
            async with session.get(url, params={"offset": "-1"}) as read:
                assert read.status == 503, (read.status, await read.text())
                load.unavailable += 1
                if not read.headers.get(RETRY_AFTER):
                    load.without_retry_after[f"read: {(await read.text()).strip()}"] += 1
            await asyncio.sleep(OUTAGE / 2)
            during = len([at for at in load.acknowledged_at if at > killed_at + 0.5])
            assert during == 0, f"{during} appends acknowledged while the database was down"
            start_called_at = time.monotonic()
            await asyncio.to_thread(server.start)
            restarted_at = time.monotonic()
            # pg_ctl start -w returns a moment after the server accepts connections: an append may land
            # in between, so the pause is also measured from the start command.
            since_start = await _wait_for_acknowledgements(load, start_called_at, 1, RECOVERY_BOUND)
            recovery = await _wait_for_acknowledgements(load, restarted_at, 1, RECOVERY_BOUND)
            await _wait_for_acknowledgements(load, restarted_at, 50, RECOVERY_BOUND)
            load.stop.set()
            async with asyncio.timeout(REQUEST_BOUND):
                await asyncio.gather(*producers)
        finally:
            await cancel_all(producers)
        assert load.bad == [], load.bad
        content = await _read_all(session, url)
    lost, duplicated = _assert_exactly_once(content, load)
    assert load.slowest < REQUEST_BOUND
    total = len(load.acknowledged_at)
    figures = {
        "acknowledged": f"{total} ({acknowledged_before} before the kill)",
        "503s (appends, one read)": f"{load.unavailable} ({load.without_retry_after.total()} lacked Retry-After)",
        "slowest answer": f"{load.slowest:.2f} s",
        "recovery (pg_ctl start returned -> first append acknowledged)": f"{recovery:.2f} s",
        "pg_ctl start called -> first append acknowledged": f"{since_start:.2f} s",
        "lost": str(lost),
        "duplicated": str(duplicated),
    }
    return figures, load.without_retry_after


def _assert_exactly_once(content: bytes, load: Load) -> tuple[int, int]:
    """(lost, duplicated) once the stream is checked to hold each acknowledged append once, in order."""
    present: dict[str, list[int]] = {}
    for who, seq in TOKEN.findall(content):
        present.setdefault(who.decode(), []).append(int(seq))
    found = Counter((who, seq) for who, seqs in present.items() for seq in seqs)
    acknowledged = {(who, seq) for who, seqs in load.acknowledged.items() for seq in seqs}
    lost = len(acknowledged - set(found))
    duplicated = sum(n - 1 for n in found.values())
    assert b"".join(match.group(0) for match in TOKEN.finditer(content)) == content, "bytes outside whole appends"
    expected = {who: list(range(len(seqs))) for who, seqs in load.acknowledged.items()}
    assert load.acknowledged == expected  # each producer moved to the next seq only after an acknowledgement
    assert (lost, duplicated) == (0, 0)
    assert present == expected, "every acknowledged append exactly once, in order, and nothing else"
    return lost, duplicated
