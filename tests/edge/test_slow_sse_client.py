"""A never-reading SSE client is cut off; the others keep their latency; edge memory stays bounded."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import SSEClient, append, create, metric, percentile, rss_mb, scrape, until, wait_metric
from tests.support.raw_clients import open_never_reading

TEXT = "text/plain"
APPEND = 8 * 1024
# Loopback socket buffers absorb about 3 MB for a client that never reads (measured: a reader
# that wakes up after 8 MiB finds ~2.9 MB waiting), so 2 MiB alone never makes the edge's own
# queue overflow. 6 MiB does: the edge then has to notice that this client cannot keep up.
TOTAL = 6 * 1024 * 1024
FAST_CLIENTS = 5
_MARK = re.compile(r"#(\d+)#")

pytestmark = pytest.mark.timeout(90)


def drain_until_end(sock: socket.socket, timeout: float) -> tuple[bool, int]:
    """Read what the edge sent; True if the response ended (EOF or the last chunk) in time."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    total = 0
    tail = b""
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, total
        if not data:
            return True, total
        total += len(data)
        tail = (tail + data)[-16:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            return True, total
    return False, total


async def test_slow_sse_client_is_cut_off_without_hurting_the_others(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never", long_poll_timeout=10)
    edge = servers.edge(origin.url, "--sse-client-buffer", "65536", long_poll_timeout=10)
    assert edge.proc is not None
    path = "/v1/stream/slow/one"
    url = edge.url + path
    async with aiohttp.ClientSession() as session:
        await create(session, url, TEXT)
        stop = asyncio.Event()
        final: list[str] = []
        fast = [SSEClient(url, "now") for _ in range(FAST_CLIENTS)]
        tasks = [asyncio.ensure_future(c.run(session, stop, final)) for c in fast]
        slow = await asyncio.to_thread(open_never_reading, edge.url, f"{path}?offset=now&live=sse")
        try:
            await until(lambda: all(c.controls for c in fast), 10, "the fast clients to start")

            async def all_connected() -> bool:
                live = metric(await scrape(session, edge.url), "ds_edge_live_clients", mode="sse")
                return live >= FAST_CLIENTS + 1

            await until(all_connected, 10, "the slow client to be served")

            rss: list[float] = [rss_mb(edge.proc.pid)]
            sent: dict[int, float] = {}
            bodies: list[bytes] = []

            async def sample_rss() -> None:
                while not stop.is_set():
                    rss.append(rss_mb(edge.proc.pid))  # type: ignore[union-attr]
                    await asyncio.sleep(0.2)

            sampler = asyncio.ensure_future(sample_rss())
            started = time.monotonic()
            tail = ""
            for i in range(TOTAL // APPEND):
                head = f"#{i}#".encode()
                body = head + b"d" * (APPEND - len(head) - 1) + b"\n"
                bodies.append(body)
                sent[i] = time.perf_counter()
                tail = await append(session, url, TEXT, body)
            write_seconds = time.monotonic() - started
            final.append(tail)
            stop.set()
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks)
            await sampler
            rss.append(rss_mb(edge.proc.pid))

            latencies = []
            for client in fast:
                assert client.text() == b"".join(bodies), "a fast client missed or repeated data"
                for received_at, data in client.received:
                    latencies.extend(received_at - sent[int(m)] for m in _MARK.findall(data))
            assert len(latencies) == FAST_CLIENTS * len(bodies)
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            # Allow for a write timeout (the edge may wait some seconds on a blocked write before cutting).
            disconnects = await wait_metric(session, edge.url, "ds_edge_slow_client_disconnects_total", 1, 20)
            ended, slow_bytes = await asyncio.to_thread(drain_until_end, slow, 10)
            print(
                f"\n{len(bodies)} x {APPEND} B in {write_seconds:.1f} s; fast clients: delivery p50 "
                f"{p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; edge RSS {rss[0]:.0f} -> max {max(rss):.0f} MB; "
                f"slow-client disconnects {disconnects:.0f}; slow client got {slow_bytes} bytes, ended={ended}"
            )
            assert p99 < 1.0
            assert max(rss) < 300
            assert disconnects >= 1, "the never-reading client was not cut off"
            assert ended, "the edge still holds the never-reading client's response open"
        finally:
            slow.close()
            for task in tasks:
                task.cancel()
