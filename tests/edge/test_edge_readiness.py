"""A real edge whose origin comes and goes: /readyz follows it, the log says so once per change.

The edge starts before its origin (as after a reboot), becomes ready once the origin answers,
is not ready while the origin is away, and logs one WARNING when it goes and one INFO when it
comes back, however many probes and requests happened meanwhile (and its change feed's retries
are not logged one by one). Its upstream failures are in `ds_edge_upstream_errors_total` under
their kind.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import aiohttp

from tests.edge.conftest import Servers
from tests.edge.support import metric, scrape


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def readyz(http: aiohttp.ClientSession, edge: str) -> tuple[int, str]:
    async with http.get(edge + "/readyz") as response:
        return response.status, await response.text()


async def until_ready(http: aiohttp.ClientSession, edge: str, ready: bool, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while (await readyz(http, edge))[0] != (200 if ready else 503):
        assert time.monotonic() - started < timeout, f"/readyz never became {'ready' if ready else 'not ready'}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def transitions(log: Path) -> list[str]:
    """The origin-health lines of an edge's log, as "LEVEL message"."""
    found = re.findall(r" ([A-Z]+) plugin_streams\.edge\.origin_health (.*)$", log.read_text(), re.M)
    return [f"{level} {message}" for level, message in found]


async def test_readiness_follows_the_origin_and_each_change_is_logged_once(servers: Servers, tmp_path: Path) -> None:
    port = free_port()
    origin_url = f"http://127.0.0.1:{port}"
    edge = servers.edge(origin_url)
    async with aiohttp.ClientSession() as http:
        status, text = await readyz(http, edge.url)
        assert status == 503 and text.startswith("not ready: origin unreachable (ClientConnectorError")
        for _ in range(20):  # probes and requests while it is away: still one line
            await readyz(http, edge.url)
            async with http.post(edge.stream_url + "s", data=b"x", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 503 and "Retry-After" in r.headers
        await asyncio.sleep(1.5)  # the change feed retries meanwhile (every second at most)
        metrics = await scrape(http, edge.url)
        assert metric(metrics, "ds_edge_upstream_errors_total", kind="write") == 20
        assert metric(metrics, "ds_edge_upstream_errors_total", kind="change_feed") >= 3
        assert metric(metrics, "ds_edge_upstream_errors_total", kind="readiness") >= 1
        assert metric(metrics, "ds_edge_origin_reachable") == 0

        origin = await servers.aorigin("--port", str(port))
        assert await until_ready(http, edge.url, True) < 3  # at most a max-age (1 s) after it answers
        assert metric(await scrape(http, edge.url), "ds_edge_origin_reachable") == 1
        async with http.put(edge.stream_url + "s", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 201

        origin.stop()
        await until_ready(http, edge.url, False)
        for _ in range(10):
            await readyz(http, edge.url)
            await asyncio.sleep(0.05)
    lines = transitions(edge.log_path)
    assert [line.split(" ", 1)[0] for line in lines] == ["WARNING", "INFO", "WARNING"], lines
    assert lines[0].startswith(f"WARNING origin {origin_url} unreachable: ClientConnectorError")
    assert lines[1].startswith(f"INFO origin {origin_url} answers again (unreachable for ")
    # The change feed's retries are not logged one by one either: once per outage, at most.
    log = edge.log_path.read_text()
    assert 1 <= len(re.findall(r" INFO plugin_streams\.edge\.invalidation change feed broke", log)) <= 2
