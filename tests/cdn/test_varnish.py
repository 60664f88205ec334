"""deploy/cdn/varnish.vcl in front of a real origin: caching, collapsing, freshness, streaming.

Each test starts its own origin (`OriginProcess`) and its own `varnishd` with the deployed VCL
pointed at that origin, and counts the requests that really reached the origin from the origin's
own `/metrics` (`ds_origin_http_requests_total`), read directly, not through Varnish.

The tests are skipped when `varnishd` is not installed; `scripts/install --test` installs it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.cdn.varnish import VarnishProcess, find_tool
from tests.support.processes import OriginProcess
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.skipif(
    find_tool("varnishd") is None,
    reason="varnishd is not installed: `apt-get install -y varnish` (scripts/install --test does it)",
)

LONG_POLL_TIMEOUT = 10.0  # origin's; longer than any wait below, so no long-poll ends in a 204
SSE_MAX_AGE = 10.0  # origin's: a buffering proxy would deliver SSE only when it ends, ~10 s later
CHUNK = 65_536  # the origin's catch-up chunk boundary
TEXT = {"Content-Type": "text/plain"}
METRIC = re.compile(r"^ds_origin_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)", re.M)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Cdn:
    origin: OriginProcess
    varnish: VarnishProcess
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        """Stream URLs through Varnish."""
        return self.varnish.url + "/v1/stream/"

    async def origin_requests(self, match: Callable[[dict[str, str]], bool]) -> int:
        """Requests the origin has answered whose labels satisfy `match` (route is always stream)."""
        async with self.http.get(self.origin.url + "/metrics") as response:
            assert response.status == 200, "the origin has no /metrics"
            text = await response.text()
        total = 0.0
        for found in METRIC.finditer(text):
            labels = dict(LABEL.findall(found.group("labels")))
            if labels.get("route") == "stream" and match(labels):
                total += float(found.group("value"))
        return int(total)

    async def origin_gets(self) -> int:
        return await self.origin_requests(lambda labels: labels.get("method") == "GET")

    async def settled_origin_gets(self, at_least: int = 1, timeout: float = 5.0) -> int:
        """The origin's GET count once it has reached `at_least` and stopped moving.

        The origin counts a request when its response ends, a moment after Varnish has passed the
        response on: wait for the expected minimum, then make sure nothing else trickles in.
        """
        deadline = time.monotonic() + timeout
        count = await self.origin_gets()
        while count < at_least and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            count = await self.origin_gets()
        await asyncio.sleep(0.3)
        return await self.origin_gets()

    async def create(self, name: str) -> str:
        """Create a stream through Varnish; returns its first offset."""
        async with self.http.put(self.base + name, headers=TEXT) as response:
            assert response.status == 201, await self.explain(response)
            return response.headers["Stream-Next-Offset"]

    async def append(self, name: str, body: bytes) -> str:
        """Append through Varnish; returns the new tail."""
        async with self.http.post(self.base + name, data=body, headers=TEXT) as response:
            assert response.status in (200, 204), await self.explain(response)
            return response.headers["Stream-Next-Offset"]

    async def explain(self, response: aiohttp.ClientResponse) -> str:
        """An unexpected answer, with what Varnish logged about failed transactions."""
        body = (await response.read())[:500].decode(errors="replace")
        await asyncio.sleep(0.5)  # let varnishlog write the transaction
        return f"{response.status} {body}\n--- varnishlog (failed transactions) ---\n{self.varnish.errors()[-6000:]}"


@pytest.fixture
async def cdn(tmp_path: Path) -> AsyncIterator[Cdn]:
    origin = OriginProcess(
        tmp_path / "data",
        "--sse-max-age",
        str(SSE_MAX_AGE),
        "--sse-keepalive",
        "5",
        long_poll_timeout=LONG_POLL_TIMEOUT,
    )
    varnish: VarnishProcess | None = None
    http: aiohttp.ClientSession | None = None
    try:
        origin.start()
        varnish = VarnishProcess(tmp_path / "varnish", origin.url)
        varnish.start()
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60),
            auto_decompress=False,
        )
        yield Cdn(origin, varnish, http)
    finally:
        if http is not None:
            await http.close()
        if varnish is not None:
            varnish.stop()
        if origin.proc is not None:
            origin.stop()


def name() -> str:
    return "cdn-" + uuid.uuid4().hex[:12]


async def test_complete_chunk_reaches_origin_once(cdn: Cdn) -> None:
    """20 sequential reads of one complete (immutable) catch-up chunk: one origin request."""
    stream = name()
    start = await cdn.create(stream)
    first = b"a" * 40_000
    await cdn.append(stream, first)
    await cdn.append(stream, b"b" * 40_000)  # ends past 64 KiB: the first append is a whole chunk
    before = await cdn.origin_gets()

    url = f"{cdn.base}{stream}?offset={start}"
    verdicts = []
    for _ in range(20):
        async with cdn.http.get(url) as response:
            assert response.status == 200
            assert await response.read() == first
            assert "immutable" in response.headers["Cache-Control"]
            assert "Stream-Up-To-Date" not in response.headers
            verdicts.append(response.headers.get("X-Cache"))

    reached = await cdn.settled_origin_gets(at_least=before + 1) - before
    backend = cdn.varnish.stats()["MAIN.backend_req"]
    assert reached == 1, f"{reached} of 20 reads reached the origin (X-Cache: {verdicts}, backend_req={backend})"
    assert verdicts == ["MISS"] + ["HIT"] * 19


async def test_concurrent_long_polls_collapse(cdn: Cdn) -> None:
    """200 long-polls at one offset and cursor: at most two origin requests for one append."""
    stream = name()
    start = await cdn.create(stream)
    tail = await cdn.append(stream, b"before")
    # A real cursor, as a client would echo it (from a long-poll that returns at once).
    async with cdn.http.get(f"{cdn.base}{stream}?offset={start}&live=long-poll") as response:
        assert response.status == 200
        cursor = response.headers["Stream-Cursor"]

    clients = 200
    sleeping_before = cdn.varnish.stats()["MAIN.busy_sleep"]
    gets_before = await cdn.origin_gets()
    # Half the clients put the query in another order: the VCL sorts it into one cache key.
    queries = [f"offset={tail}&live=long-poll&cursor={cursor}", f"cursor={cursor}&live=long-poll&offset={tail}"]

    async def poll(i: int) -> tuple[int, bytes, str | None]:
        async with cdn.http.get(f"{cdn.base}{stream}?{queries[i % 2]}") as response:
            return response.status, await response.read(), response.headers.get("X-Cache")

    tasks = [asyncio.ensure_future(poll(i)) for i in range(clients)]
    try:
        # Wait until 199 requests are parked on Varnish's waiting list behind the one that went to
        # the origin (busy_sleep; client_req is no use here: a worker thread adds its counts to the
        # totals only when it goes idle, and the one fetching for the waiting list does not).
        # Bounded well inside the origin's long-poll timeout: a VCL that does not collapse never
        # parks them, the append then goes ahead, and the count of origin requests fails the test.
        deadline = time.monotonic() + LONG_POLL_TIMEOUT / 2
        while time.monotonic() < deadline:
            if cdn.varnish.stats()["MAIN.busy_sleep"] - sleeping_before >= clients - 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in tasks), "a long-poll returned before the append"

        payload = b"appended-" + uuid.uuid4().hex.encode()
        appended = time.monotonic()
        await cdn.append(stream, payload)
        async with asyncio.timeout(20):
            results = await asyncio.gather(*tasks)
        elapsed = time.monotonic() - appended
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    statuses = sorted({status for status, _, _ in results})
    assert statuses == [200], statuses
    wrong = sum(1 for _, body, _ in results if body != payload)
    assert wrong == 0, f"{wrong} of {clients} long-polls did not receive the appended data"
    reached = await cdn.settled_origin_gets(at_least=gets_before + 1) - gets_before
    verdicts = {v: sum(1 for _, _, x in results if x == v) for v in {x for _, _, x in results}}
    assert reached <= 2, f"{reached} origin long-polls for {clients} clients and one append (X-Cache: {verdicts})"
    assert elapsed < 5, f"the long-polls took {elapsed:.2f}s after the append"


async def test_head_now_and_tail_are_not_stale(cdn: Cdn) -> None:
    """HEAD and `offset=now` show an append at once; a tail read shows it within ~1 s."""
    stream = name()
    start = await cdn.create(stream)
    await cdn.append(stream, b"x" * 40_000)
    tail = await cdn.append(stream, b"y" * 40_000)  # two chunks: a read from the start stops early
    stream_url = cdn.base + stream

    async def head() -> str:
        async with cdn.http.head(stream_url) as response:
            assert response.status == 200
            return response.headers["Stream-Next-Offset"]

    async def now() -> str:
        async with cdn.http.get(stream_url + "?offset=now") as response:
            assert response.status == 200
            assert await response.read() == b""
            return response.headers["Stream-Next-Offset"]

    async def read(offset: str) -> tuple[bytes, str]:
        async with cdn.http.get(f"{stream_url}?offset={offset}") as response:
            assert response.status == 200
            return await response.read(), response.headers["Stream-Next-Offset"]

    # Warm every cacheable neighbour of HEAD and `offset=now`: a read from the start (with no
    # offset, and with -1) ends at the first chunk; a tail read is empty.
    async with cdn.http.get(stream_url) as response:
        assert response.status == 200
        first_chunk_end = response.headers["Stream-Next-Offset"]
        assert first_chunk_end != tail
    assert (await read("-1"))[1] == first_chunk_end
    assert (await read(start))[1] == first_chunk_end
    assert await read(tail) == (b"", tail)
    assert await head() == tail, "HEAD was answered from a cached GET"
    assert await now() == tail

    payload = b"fresh-" + uuid.uuid4().hex.encode()
    appended = time.monotonic()
    new_tail = await cdn.append(stream, payload)
    assert new_tail != tail
    for _ in range(5):
        assert await head() == new_tail, "HEAD is stale after an append"
        assert await now() == new_tail, "offset=now is stale after an append"

    # The tail read was cached for the origin's max-age=1 (+1 s stale-while-revalidate, which only
    # the request that triggers the refresh sees): polling, the new data shows within ~1 s.
    seen = None
    while time.monotonic() - appended < 5:
        body, next_offset = await read(tail)
        if body:
            seen = time.monotonic() - appended
            assert (body, next_offset) == (payload, new_tail)
            break
        assert next_offset == tail
        await asyncio.sleep(0.05)
    assert seen is not None, "the tail read never showed the appended data"
    assert seen <= 1.5, f"the tail read showed the append only after {seen:.2f}s"


async def test_sse_is_not_buffered(cdn: Cdn) -> None:
    """SSE through Varnish: the first control event at once, an append's event within 1 s."""
    stream = name()
    await cdn.create(stream)
    tail = await cdn.append(stream, b"history")

    opened = time.monotonic()
    async with cdn.http.get(f"{cdn.base}{stream}?offset={tail}&live=sse") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "no-cache" in response.headers.get("Cache-Control", "")
        events = SSEReader(response)
        first = await events.next(timeout=3)
        assert first is not None and first.event == "control", first
        assert time.monotonic() - opened < 2, "the first SSE event was held back"

        payload = "sse-" + uuid.uuid4().hex
        await asyncio.sleep(0.2)
        appended = time.monotonic()
        await cdn.append(stream, payload.encode())
        data = await events.first("data", timeout=SSE_MAX_AGE / 2)
        delay = time.monotonic() - appended
        assert data == payload
        assert delay <= 1.0, f"the SSE data event arrived {delay:.2f}s after the append"


async def test_credentials_never_share_a_cached_answer(cdn: Cdn) -> None:
    """A response cached for one Authorization is never served to another (or to none)."""
    stream = name()
    start = await cdn.create(stream)
    await cdn.append(stream, b"a" * 40_000)
    await cdn.append(stream, b"b" * 40_000)
    url = f"{cdn.base}{stream}?offset={start}"
    before = await cdn.origin_gets()

    verdicts = []
    for authorization in ("Bearer alice", "Bearer alice", "Bearer bob", None, "Bearer bob", None):
        headers = {"Authorization": authorization} if authorization else {}
        async with cdn.http.get(url, headers=headers) as response:
            assert response.status == 200
            await response.read()
            verdicts.append(response.headers.get("X-Cache"))
    reached = await cdn.settled_origin_gets(at_least=before + 3) - before
    assert reached == 3, f"{reached} origin reads for 3 distinct credentials (X-Cache: {verdicts})"
    assert verdicts == ["MISS", "HIT", "MISS", "MISS", "HIT", "HIT"]


async def test_delete_drops_cached_chunks(cdn: Cdn) -> None:
    """After a DELETE through Varnish, a year-long cached chunk of the old stream is gone."""
    stream = name()
    start = await cdn.create(stream)
    await cdn.append(stream, b"a" * 40_000)
    await cdn.append(stream, b"b" * 40_000)
    url = f"{cdn.base}{stream}?offset={start}"
    for _ in range(2):
        async with cdn.http.get(url) as response:
            assert response.status == 200
            await response.read()
    assert response.headers["X-Cache"] == "HIT"

    async with cdn.http.delete(cdn.base + stream) as response:
        assert response.status in (200, 204)
    async with cdn.http.get(url) as response:
        assert response.status in (404, 410), f"deleted data served with {response.status}"
        assert response.headers.get("X-Cache") != "HIT"
