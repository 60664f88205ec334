"""deploy/cdn/nginx.conf in front of a real origin: caching, collapsing, 204s, streaming.

Each test starts its own origin (`OriginProcess`) and its own `nginx` running the deployed
configuration pointed at that origin (tests/cdn/nginx.py rewrites only the port, upstream, paths
and user), and counts the requests that really reached the origin from the origin's own
`/metrics` (`ds_origin_http_requests_total{method="GET",route="stream"}`, summed over statuses),
read directly, not through nginx. The last test puts a real edge between nginx and the origin.

The tests are skipped when the `nginx` binary is not installed (`apt-get install -y nginx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.cdn.nginx import CONF, NginxProcess, find_nginx
from tests.support.processes import EdgeProcess, OriginProcess, ServerProcess
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.skipif(
    find_nginx() is None,
    reason="the nginx binary is not installed: `apt-get install -y nginx`",
)

CHUNK = 65_536  # the origin's catch-up chunk boundary
TEXT = {"Content-Type": "text/plain"}
REQUESTS = re.compile(r"^ds_(?:origin|edge)_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)", re.M)
LIVE = re.compile(r'^ds_origin_live_connections\{mode="long_poll"\}\s+(?P<value>\S+)', re.M)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Cdn:
    upstream: ServerProcess  # what nginx proxies to: the origin, or an edge
    nginx: NginxProcess
    http: aiohttp.ClientSession
    origin: OriginProcess
    others: list[ServerProcess] = field(default_factory=list)

    @property
    def base(self) -> str:
        """Stream URLs through nginx."""
        return self.nginx.url + "/v1/stream/"

    async def _metrics(self, process: ServerProcess) -> str:
        async with self.http.get(process.url + "/metrics") as response:
            assert response.status == 200, f"{process.url} has no /metrics"
            return await response.text()

    async def upstream_gets(self) -> int:
        """GETs of stream URLs the upstream has answered (every status)."""
        total = 0.0
        for found in REQUESTS.finditer(await self._metrics(self.upstream)):
            labels = dict(LABEL.findall(found.group("labels")))
            if labels.get("route") == "stream" and labels.get("method") == "GET":
                total += float(found.group("value"))
        return int(total)

    async def origin_gets(self) -> int:
        """GETs of stream URLs the origin itself has answered (behind an edge: what it let through)."""
        total = 0.0
        for found in REQUESTS.finditer(await self._metrics(self.origin)):
            labels = dict(LABEL.findall(found.group("labels")))
            if labels.get("route") == "stream" and labels.get("method") == "GET":
                total += float(found.group("value"))
        return int(total)

    async def settled_upstream_gets(self, at_least: int, timeout: float = 5.0) -> int:
        """The upstream's GET count once it has reached `at_least` and stopped moving.

        The upstream counts a request when its response ends, a moment after nginx has passed the
        response on: wait for the expected minimum, then make sure nothing else trickles in.
        """
        deadline = time.monotonic() + timeout
        count = await self.upstream_gets()
        while count < at_least and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            count = await self.upstream_gets()
        await asyncio.sleep(0.3)
        return await self.upstream_gets()

    async def nginx_writing(self) -> int:
        """stub_status `Writing`: requests nginx has read and is still answering."""
        async with self.http.get(self.nginx.url + "/nginx_status") as response:
            assert response.status == 200, "no stub_status on /nginx_status"
            found = re.search(r"Writing: (\d+)", await response.text())
        assert found is not None
        return int(found.group(1))

    async def origin_long_polls_open(self) -> int:
        found = LIVE.search(await self._metrics(self.origin))
        return int(float(found.group("value"))) if found else 0

    async def create(self, name: str) -> str:
        """Create a stream through nginx; returns its first offset."""
        async with self.http.put(self.base + name, headers=TEXT) as response:
            assert response.status == 201, await response.text()
            return response.headers["Stream-Next-Offset"]

    async def append(self, name: str, body: bytes) -> str:
        """Append through nginx; returns the new tail."""
        async with self.http.post(self.base + name, data=body, headers=TEXT) as response:
            assert response.status in (200, 204), await response.text()
            return response.headers["Stream-Next-Offset"]


CdnFactory = Callable[..., Awaitable[Cdn]]


@pytest.fixture
async def make_cdn(tmp_path: Path) -> AsyncIterator[CdnFactory]:
    """`await make_cdn(long_poll_timeout=..., edge=False)`: origin (+ edge) + nginx + a client."""
    started: list[ServerProcess | NginxProcess] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(
        *, long_poll_timeout: float = 10.0, sse_max_age: float = 10.0, edge: bool = False, lock_timeout: str = ""
    ) -> Cdn:
        """`lock_timeout`: the deployed file with this `proxy_cache_lock_timeout` instead (e.g. "3s")."""
        origin = OriginProcess(
            tmp_path / "data",
            "--sse-max-age",
            str(sse_max_age),
            "--sse-keepalive",
            "5",
            long_poll_timeout=long_poll_timeout,
        )
        origin.start()
        started.append(origin)
        upstream: ServerProcess = origin
        if edge:
            upstream = EdgeProcess(
                origin.url,
                tmp_path,
                "--sse-max-age",
                str(sse_max_age),
                "--sse-keepalive",
                "5",
                long_poll_timeout=long_poll_timeout,
            )
            upstream.start()
            started.append(upstream)
        conf = CONF
        if lock_timeout:
            conf = tmp_path / "nginx-lock.conf"
            text, count = re.subn(
                r"proxy_cache_lock_timeout \S+;", f"proxy_cache_lock_timeout {lock_timeout};", CONF.read_text()
            )
            assert count >= 1
            conf.write_text(text)
        nginx = NginxProcess(tmp_path / "nginx", upstream.url, conf=conf)
        nginx.start()
        started.append(nginx)
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=60),
            auto_decompress=False,
        )
        sessions.append(http)
        return Cdn(upstream, nginx, http, origin)

    try:
        yield make
    finally:
        for http in sessions:
            await http.close()
        for process in reversed(started):
            if isinstance(process, NginxProcess) or (process.proc is not None and process.proc.poll() is None):
                process.stop()


def name() -> str:
    return "nginx-" + uuid.uuid4().hex[:12]


async def complete_chunk_reaches_upstream_once(cdn: Cdn) -> None:
    stream = name()
    start = await cdn.create(stream)
    first = b"a" * 40_000
    await cdn.append(stream, first)
    await cdn.append(stream, b"b" * 40_000)  # ends past 64 KiB: the first append is a whole chunk
    before = await cdn.upstream_gets()

    url = f"{cdn.base}{stream}?offset={start}"
    verdicts = []
    for _ in range(20):
        async with cdn.http.get(url) as response:
            assert response.status == 200
            assert await response.read() == first
            assert "immutable" in response.headers["Cache-Control"]
            assert "Stream-Up-To-Date" not in response.headers
            verdicts.append(response.headers.get("X-Cache-Status"))

    reached = await cdn.settled_upstream_gets(at_least=before + 1) - before
    assert reached == 1, f"{reached} of 20 reads reached the upstream (X-Cache-Status: {verdicts})"
    assert verdicts == ["MISS"] + ["HIT"] * 19


async def test_complete_chunk_reaches_origin_once(make_cdn: CdnFactory) -> None:
    """20 sequential reads of one complete (immutable) catch-up chunk: one origin request."""
    await complete_chunk_reaches_upstream_once(await make_cdn())


async def long_polls_collapse(cdn: Cdn, *, clients: int = 200, rounds: int = 2) -> None:
    stream = name()
    start = await cdn.create(stream)
    tail = await cdn.append(stream, b"before")
    # A real cursor, as a client would echo it (from a long-poll that returns at once).
    async with cdn.http.get(f"{cdn.base}{stream}?offset={start}&live=long-poll") as response:
        assert response.status == 200
        cursor = response.headers["Stream-Cursor"]

    for round_ in range(rounds):
        gets_before = await cdn.upstream_gets()
        # The clients put the query in three orders (and one adds a parameter the upstream ignores):
        # the key is built from the relevant parameters in sorted order, so all share one key.
        queries = [
            f"offset={tail}&live=long-poll&cursor={cursor}",
            f"cursor={cursor}&live=long-poll&offset={tail}",
            f"live=long-poll&offset={tail}&cursor={cursor}&utm=x",
        ]

        async def poll(query: str) -> tuple[int, bytes, str | None, str | None, str | None]:
            async with cdn.http.get(f"{cdn.base}{stream}?{query}") as response:
                return (
                    response.status,
                    await response.read(),
                    response.headers.get("X-Cache-Status"),
                    response.headers.get("Stream-Next-Offset"),
                    response.headers.get("Stream-Cursor"),
                )

        tasks = [asyncio.ensure_future(poll(queries[i % len(queries)])) for i in range(clients)]
        try:
            # Wait until nginx is working on every request (stub_status `Writing`, + 1 for the
            # status request itself) and the origin holds at least one long-poll. Bounded well
            # inside the origin's long-poll timeout: without collapsing, all of them reach the
            # upstream, and the count below fails the test.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if await cdn.nginx_writing() >= clients + 1:
                    if await cdn.origin_long_polls_open() >= 1:
                        break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert not any(task.done() for task in tasks), "a long-poll returned before the append"

            payload = b"appended-" + uuid.uuid4().hex.encode()
            appended = time.monotonic()
            new_tail = await cdn.append(stream, payload)
            async with asyncio.timeout(20):
                results = await asyncio.gather(*tasks)
            elapsed = time.monotonic() - appended
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        statuses = sorted({r[0] for r in results})
        assert statuses == [200], f"round {round_}: statuses {statuses}"
        wrong = sum(1 for r in results if r[1] != payload or r[3] != new_tail)
        assert wrong == 0, f"round {round_}: {wrong} of {clients} long-polls did not receive the appended data"
        reached = await cdn.settled_upstream_gets(at_least=gets_before + 1) - gets_before
        verdicts = {v: sum(1 for r in results if r[2] == v) for v in {r[2] for r in results}}
        assert reached <= 2, (
            f"round {round_}: {reached} upstream long-polls for {clients} clients and one append "
            f"(X-Cache-Status: {verdicts})"
        )
        assert elapsed < 5, f"round {round_}: the long-polls took {elapsed:.2f}s after the append"
        # Every client got the same cached answer, so all echo the same next cursor: next round.
        cursors = {r[4] for r in results}
        assert len(cursors) == 1, f"round {round_}: clients got different cursors {cursors}"
        cursor = cursors.pop()
        tail = new_tail


async def test_concurrent_long_polls_collapse(make_cdn: CdnFactory) -> None:
    """200 long-polls at one offset+cursor, two appends: at most two origin requests per append."""
    await long_polls_collapse(await make_cdn(long_poll_timeout=10.0))


async def test_long_poll_204_is_not_cached(make_cdn: CdnFactory) -> None:
    """A long-poll that timed out (204) is not cached: the same URL after an append gets the data."""
    cdn = await make_cdn(long_poll_timeout=1.0)
    stream = name()
    start = await cdn.create(stream)
    tail = await cdn.append(stream, b"before")
    async with cdn.http.get(f"{cdn.base}{stream}?offset={start}&live=long-poll") as response:
        assert response.status == 200
        cursor = response.headers["Stream-Cursor"]

    url = f"{cdn.base}{stream}?cursor={cursor}&live=long-poll&offset={tail}"
    before = await cdn.upstream_gets()
    for attempt in range(2):  # a second 204 on the same key must not be cached either
        started = time.monotonic()
        async with cdn.http.get(url) as response:
            assert response.status == 204, f"attempt {attempt}: {response.status}"
            assert "no-store" in response.headers.get("Cache-Control", "")
        assert time.monotonic() - started >= 0.8, "the 204 came back before the origin's long-poll timeout"
    assert await cdn.settled_upstream_gets(at_least=before + 2) - before == 2

    payload = b"after-" + uuid.uuid4().hex.encode()
    new_tail = await cdn.append(stream, payload)
    started = time.monotonic()
    async with cdn.http.get(url) as response:
        status, body = response.status, await response.read()
        verdict = response.headers.get("X-Cache-Status")
    assert status == 200, f"the long-poll after the append got {status} (X-Cache-Status: {verdict}): a cached 204?"
    assert body == payload
    assert response.headers["Stream-Next-Offset"] == new_tail
    assert time.monotonic() - started < 1.0, "the data was not returned at once"


async def next_event(events: SSEReader) -> str:
    """The kind of the next event (AssertionError if the response ends first)."""
    event = await events.next()
    assert event is not None, "the SSE response ended"
    return event.event


async def data_event(events: SSEReader, since: float) -> tuple[str | None, float]:
    """The next `data` event's payload, and the seconds from `since` until it arrived."""
    data = await events.first("data")
    return data, time.monotonic() - since


async def sse_is_not_buffered(cdn: Cdn, *, clients: int = 2) -> None:
    """Two SSE clients tail one stream at the same URL (as browsers on one page would)."""
    stream = name()
    await cdn.create(stream)
    tail = await cdn.append(stream, b"history")
    url = f"{cdn.base}{stream}?offset={tail}&live=sse"

    async with contextlib.AsyncExitStack() as stack:
        responses = []
        opened = time.monotonic()
        for _ in range(clients):
            response = await stack.enter_async_context(cdn.http.get(url))
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert "no-cache" in response.headers.get("Cache-Control", "")
            responses.append(response)
        readers = [SSEReader(response) for response in responses]
        async with asyncio.timeout(3):
            firsts = await asyncio.gather(*(next_event(events) for events in readers))
        assert firsts == ["control"] * clients, firsts
        waited = time.monotonic() - opened
        # A second client queued behind the first (a cache lock) would wait for its whole response.
        assert waited < 2, f"the first SSE events took {waited:.2f}s: held back"

        for i in range(3):  # three appends, each delivered on its own
            payload = f"sse-{i}-" + uuid.uuid4().hex
            await asyncio.sleep(0.2)
            appended = time.monotonic()
            await cdn.append(stream, payload.encode())

            async with asyncio.timeout(4):
                received = await asyncio.gather(*(data_event(events, appended) for events in readers))
            for data, delay in received:
                assert data == payload
                assert delay <= 1.0, f"SSE data event {i} arrived {delay:.2f}s after the append"


async def test_sse_is_not_buffered(make_cdn: CdnFactory) -> None:
    """SSE through nginx: first control events at once, each append's event within 1 s, 2 clients."""
    await sse_is_not_buffered(await make_cdn(sse_max_age=10.0))


async def test_head_now_and_credentials_bypass_the_cache(make_cdn: CdnFactory) -> None:
    """HEAD and `offset=now` are never answered from a cached GET; Authorization is never cached."""
    cdn = await make_cdn()
    stream = name()
    start = await cdn.create(stream)
    await cdn.append(stream, b"x" * 40_000)
    tail = await cdn.append(stream, b"y" * 40_000)  # two chunks: a read from the start stops early
    stream_url = cdn.base + stream

    # Warm the cache with GETs of the very URLs HEAD and `offset=now` use.
    for url in (stream_url, f"{stream_url}?offset=now", f"{stream_url}?offset={start}"):
        for _ in range(2):
            async with cdn.http.get(url) as response:
                assert response.status == 200
                await response.read()
    async with cdn.http.head(stream_url) as response:
        assert response.headers["Stream-Next-Offset"] == tail, "HEAD was answered from a cached GET"
    new_tail = await cdn.append(stream, b"fresh")
    for _ in range(3):
        async with cdn.http.head(stream_url) as response:
            assert response.headers["Stream-Next-Offset"] == new_tail, "HEAD is stale after an append"
        async with cdn.http.get(f"{stream_url}?offset=now") as response:
            assert response.headers["Stream-Next-Offset"] == new_tail, "offset=now is stale after an append"

    # The chunk at `start` is cached now; a request with credentials still goes upstream, each time.
    before = await cdn.upstream_gets()
    for _ in range(3):
        async with cdn.http.get(f"{stream_url}?offset={start}", headers={"Authorization": "Bearer t"}) as response:
            assert response.status == 200
            await response.read()
            assert response.headers.get("X-Cache-Status") == "BYPASS"
    assert await cdn.settled_upstream_gets(at_least=before + 3) - before == 3


async def test_through_an_edge(make_cdn: CdnFactory) -> None:
    """nginx in front of an edge: chunks once, long-polls collapsed, SSE unbuffered (edge's counts)."""
    cdn = await make_cdn(long_poll_timeout=10.0, edge=True)
    await complete_chunk_reaches_upstream_once(cdn)
    await long_polls_collapse(cdn, clients=100, rounds=1)
    await sse_is_not_buffered(cdn)


async def test_a_short_lock_in_front_of_an_edge_answers_idle_long_polls_in_time(make_cdn: CdnFactory) -> None:
    """deploy/README.md's advice for nginx in front of edges (`proxy_cache_lock_timeout 3s`): on an
    idle stream, 10 clients long-polling one key all get their 204 within about two long-poll
    timeouts (with 35 s they would wait in turn, one long-poll each), and the edge still asks the
    origin for few long-polls: the clients released by the lock join its shared one."""
    timeout = 2.0
    cdn = await make_cdn(long_poll_timeout=timeout, edge=True, lock_timeout="3s")
    stream = name()
    tail = await cdn.create(stream)
    url = f"{cdn.base}{stream}?offset={tail}&live=long-poll&cursor=1"
    before = await cdn.origin_gets()
    started = time.monotonic()

    async def poll() -> tuple[int, float]:
        async with cdn.http.get(url) as response:
            await response.read()
            return response.status, time.monotonic() - started

    answers = await asyncio.gather(*(poll() for _ in range(10)))
    assert [status for status, _ in answers] == [204] * 10
    latest = max(at for _, at in answers)
    assert latest < 2 * timeout + 1.5, f"the last 204 came after {latest:.1f} s: {sorted(at for _, at in answers)}"
    reached = await cdn.origin_gets() - before
    assert reached <= 3, f"{reached} long-polls reached the origin for 10 clients"
