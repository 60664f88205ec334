"""`--workers 2`: two edge processes behind one SERVER_URL; SIGTERM stops them all with exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, children_of, create, metric

TEXT = "text/plain"

pytestmark = pytest.mark.timeout(60)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def wait_children(pid: int, count: int, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = children_of(pid)
        if len(children) >= count:
            return children
        await asyncio.sleep(0.05)
    raise AssertionError(f"{pid} has children {children_of(pid)}, wanted {count}")


async def metrics_requests_seen(url: str) -> int:
    """Over a new connection: how many /metrics requests the answering worker had served before."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(url + "/metrics") as r,
    ):
        assert r.status == 200
        return int(metric(await r.text(), "ds_edge_http_requests_total", method="GET", route="metrics"))


async def test_two_workers_share_one_port_and_stop_cleanly(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never", long_poll_timeout=5)
    edge = servers.edge(origin.url, "--workers", "2", long_poll_timeout=5)
    assert edge.proc is not None
    workers = await wait_children(edge.proc.pid, 2)
    assert len(workers) == 2

    url = edge.stream_url + "workers/one"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        await create(session, url, TEXT, b"a;")
        for i in range(20):
            await append(session, url, TEXT, f"{i};".encode())
        async with session.get(url, params={"offset": "-1"}) as r:
            assert r.status == 200
            assert await r.read() == b"a;" + b"".join(f"{i};".encode() for i in range(20))
        # Both workers answer: over 30 new connections, one worker alone would count 0, 1, 2, ...
        seen = [await metrics_requests_seen(edge.url) for _ in range(30)]
        assert len(set(seen)) < len(seen), f"one worker answered every connection: {seen}"

        started = time.monotonic()
        edge.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(edge.proc.wait, 20)
        elapsed = time.monotonic() - started
    print(f"\nworkers {workers}; /metrics counts per new connection {seen}; exit {code} after {elapsed:.1f} s")
    assert code == 0
    assert all(not alive(pid) for pid in workers), "a worker outlived the supervisor"
    assert elapsed < 15


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_answers_waiting_live_reads_promptly(servers: Servers, workers: int) -> None:
    """Like the origin: on SIGTERM, waiting long-polls get a 204 and SSE responses end, at once.

    With the default 30 s long-poll timeout, an edge that leaves its long-polls to the origin
    cannot drain within its grace period; the clients then lose the connection, not get a 204.
    """
    origin = servers.origin("--fsync", "never", long_poll_timeout=30)
    edge = servers.edge(origin.url, "--workers", str(workers), long_poll_timeout=30)
    assert edge.proc is not None
    url = edge.stream_url + "workers/live"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        session._retry_connection = False  # show a dropped connection as such, not as a failed retry
        tail = await create(session, url, TEXT, b"a;")

        async def long_poll() -> int | str:
            try:
                async with session.get(url, params={"offset": tail, "live": "long-poll"}) as r:
                    await r.read()
                    return r.status
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        async def sse() -> int | str:
            try:
                async with session.get(url, params={"offset": tail, "live": "sse"}) as r:
                    await r.read()
                    return r.status
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        if workers > 1:
            await wait_children(edge.proc.pid, workers)
        tasks = [asyncio.ensure_future(long_poll()) for _ in range(4)] + [asyncio.ensure_future(sse())]
        await asyncio.sleep(1.5)
        assert not any(t.done() for t in tasks), "a live read ended before SIGTERM"
        started = time.monotonic()
        edge.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(40):
            statuses = await asyncio.gather(*tasks)
        answered = time.monotonic() - started
        code = await asyncio.to_thread(edge.proc.wait, 40)
        stopped = time.monotonic() - started
    print(
        f"\n{workers} worker(s): live reads at SIGTERM -> {statuses} after {answered:.1f} s; "
        f"exit {code} after {stopped:.1f} s"
    )
    assert code == 0
    assert statuses == [204, 204, 204, 204, 200], statuses
    assert answered < 5, f"live reads were answered {answered:.1f} s after SIGTERM"
    assert stopped < 8


async def test_supervisor_reports_a_crashed_worker(servers: Servers) -> None:
    """The supervisor "exits with the worst code": a worker killed by a signal is not a clean exit."""
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url, "--workers", "2")
    assert edge.proc is not None
    workers = await wait_children(edge.proc.pid, 2)
    os.kill(workers[0], signal.SIGKILL)
    await asyncio.sleep(0.5)
    edge.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(edge.proc.wait, 20)
    assert not alive(workers[1])
    assert code != 0, "a SIGKILLed worker was reported as a clean exit (0)"
