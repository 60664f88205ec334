"""Long-poll readers and a writer appending through the same edge: one upstream poll per append.

Readers re-poll at the Stream-Next-Offset of each answer as soon as it arrives, which under load
is before the writer's own append (the one that produced that offset) is acknowledged through
the edge; others get there after. Made deterministic here: a proxy between edge and origin holds
back answers to writes, and half of the readers re-poll only after that. All polls at the new
offset must still share one upstream long-poll per append, and a read issued after an
acknowledged write must still see that write (read-your-writes), even while a poll that began
before the write is still on its way back to the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import (
    append,
    create,
    metric,
    origin_stream_gets,
    raise_nofile,
    scrape,
    until,
    wait_metric,
)

READERS = 600  # half re-poll at once, half after the write's acknowledgement
ACK_DELAY = 0.15  # the proxy holds answers to writes this long
LATE = 2 * ACK_DELAY
APPENDS = 20
CHECKED_APPENDS = 10
LONG_POLL_TIMEOUT = 20.0  # on both: no upstream long-poll times out during the test
HELD = 3.0  # seconds the proxy holds the origin's long-poll 204 in the second test
HELD_ANSWER = (b"GET", b"HTTP/1.1 204")
TEXT = "text/plain"

pytestmark = pytest.mark.timeout(120)


Hold = Callable[[bytes, bytes], float]  # (request method, answer's first bytes) -> seconds


class HoldingProxy:
    """A TCP relay from the edge to the origin that holds back some answers for a while."""

    def __init__(self, origin_url: str, hold: Hold) -> None:
        parts = urlsplit(origin_url)
        self.host, self.port = parts.hostname, parts.port
        self.hold = hold
        self.streams: set[asyncio.StreamWriter] = set()
        self.relays: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for stream in self.streams:
            stream.close()  # each relay then sees end of file on both sides and returns
        async with asyncio.timeout(10):
            await asyncio.gather(*self.relays)

    async def _relay(self, edge_in: asyncio.StreamReader, edge_out: asyncio.StreamWriter) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        self.relays.add(relay)
        self.streams.add(edge_out)
        origin_in, origin_out = await asyncio.open_connection(self.host, self.port)
        self.streams.add(origin_out)
        method = b""  # of the request in progress on this connection

        async def requests() -> None:
            nonlocal method
            while data := await edge_in.read(65536):
                if data[:8].split(b" ")[0] in (b"GET", b"HEAD", b"PUT", b"POST", b"DELETE"):
                    method = data.split(b" ")[0]
                origin_out.write(data)
                await origin_out.drain()
            origin_out.close()

        async def answers() -> None:
            while data := await origin_in.read(65536):
                await asyncio.sleep(self.hold(method, data))
                edge_out.write(data)
                await edge_out.drain()
            edge_out.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(requests(), answers())


class Poller(asyncio.Protocol):
    """One keep-alive connection that long-polls in a loop, re-polling as soon as an answer is in."""

    def __init__(self, path: str, offset: str, delay: float) -> None:
        self.path, self.offset, self.delay = path, offset, delay
        self.received = b""
        self.problems: list[str] = []
        self.stopped = False
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.poll()

    def poll(self) -> None:
        if self.stopped or self.transport is None:
            return
        target = f"{self.path}?offset={self.offset}&live=long-poll"
        self.transport.write(f"GET {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(fields.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            status = int(lines[0].split()[1])
            if status == 200:
                self.received += body
            elif status != 204:
                self.problems.append(f"status {status}: {body[:80]!r}")
            self.offset = fields.get("stream-next-offset", self.offset)
            if not self.stopped:
                asyncio.get_running_loop().call_later(self.delay, self.poll)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stopped:
            self.problems.append(f"connection lost: {exc}")


async def test_appends_through_the_edge_share_one_upstream_poll_each(servers: Servers) -> None:
    raise_nofile(READERS * 3 + 1000)
    origin = servers.origin("--fsync", "never", long_poll_timeout=LONG_POLL_TIMEOUT)
    proxy = HoldingProxy(origin.url, lambda method, _: ACK_DELAY if method == b"POST" else 0.0)
    proxy_url = await proxy.__aenter__()
    edge = await asyncio.to_thread(servers.edge, proxy_url, long_poll_timeout=LONG_POLL_TIMEOUT)
    path = "/v1/stream/write-through/fan-in"
    url = edge.url + path
    parts = urlsplit(edge.url)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as writer, aiohttp.ClientSession() as admin:
        tail = await create(writer, url, TEXT, b"history;")
        pollers = [Poller(path, tail, LATE * (i % 2)) for i in range(READERS)]
        for poller in pollers:
            await loop.create_connection(lambda p=poller: p, parts.hostname, parts.port)
        try:

            async def waiting() -> bool:
                return metric(await scrape(admin, edge.url), "ds_edge_long_poll_waiters") >= READERS

            await until(waiting, 30, f"{READERS} long-polls waiting at the edge", interval=0.1)
            before = await origin_stream_gets(admin, origin.url)
            bodies = [f"append {i};".encode() for i in range(APPENDS)]
            expected = b"".join(bodies)
            for body in bodies:
                tail = await append(writer, url, TEXT, body)
                await asyncio.sleep(LATE + 0.1)  # every reader waits at the new tail again
            await until(lambda: all(len(p.received) >= len(expected) for p in pollers), 30, "every reader")
            after = await origin_stream_gets(admin, origin.url)

            # Read-your-writes, with the readers still polling: after each acknowledged append, a
            # long-poll from the writer's previous offset and a read from the start both see it.
            stale: list[str] = []
            for i in range(CHECKED_APPENDS):
                mine = f"checked {i};".encode()
                expected += mine
                end = await append(writer, url, TEXT, mine)
                async with writer.get(url, params={"offset": tail, "live": "long-poll"}) as r:
                    got = (r.status, await r.read(), r.headers.get("Stream-Next-Offset"))
                if got[0] != 200 or not got[1].endswith(mine) or got[2] != end:
                    stale.append(f"long-poll from {tail} after append {i}: {got}")
                async with writer.get(url, params={"offset": "-1"}) as r:
                    whole = await r.read()
                if not whole.endswith(mine):
                    stale.append(f"read from the start after append {i} ends with {whole[-24:]!r}")
                tail = end
            await until(lambda: all(len(p.received) >= len(expected) for p in pollers), 30, "every reader")
        finally:
            for poller in pollers:
                poller.stopped = True
                if poller.transport is not None:
                    poller.transport.close()
            await proxy.__aexit__()
    per_append = (after - before) / APPENDS
    print(f"\n{APPENDS} appends through the edge, {READERS} re-polling readers: {per_append:.3f} origin GETs each")
    problems = [problem for p in pollers for problem in p.problems]
    assert not problems, problems[:5]
    assert all(p.received == expected for p in pollers), "a reader lost, repeated or reordered data"
    assert not stale, "\n".join(stale)
    assert per_append <= 1.05


async def test_a_poll_that_began_before_a_write_is_not_shared_after_it(servers: Servers) -> None:
    """The origin answers a long-poll 204 (timed out, up to date at X) just before an append at X;
    the proxy holds that answer. A long-poll at X by the writer after its append is acknowledged
    must not get it: it must see the append."""
    origin = servers.origin("--fsync", "never", long_poll_timeout=1)
    proxy = HoldingProxy(origin.url, lambda method, answer: HELD if (method, answer[:12]) == HELD_ANSWER else 0.0)
    proxy_url = await proxy.__aenter__()
    try:
        edge = await asyncio.to_thread(servers.edge, proxy_url, long_poll_timeout=1)
        url = edge.url + "/v1/stream/write-through/held"
        async with aiohttp.ClientSession() as session:
            tail = await create(session, url, TEXT, b"history;")
            before = await origin_stream_gets(session, origin.url)
            params = {"offset": tail, "live": "long-poll"}

            async def poll() -> tuple[int, bytes, str | None]:
                async with session.get(url, params=params) as r:
                    return r.status, await r.read(), r.headers.get("Stream-Up-To-Date")

            early = asyncio.ensure_future(poll())
            # The origin answers the edge's poll (204 after its 1 s timeout); the proxy holds it.
            gets = await wait_metric(
                session, origin.url, "ds_origin_http_requests_total", before + 1, 10, method="GET", route="stream"
            )
            assert gets == before + 1 and not early.done()
            mine = b"written after the origin's answer"
            await append(session, url, TEXT, mine)
            assert not early.done(), "the held answer arrived before the write's acknowledgement"
            after_write = await poll()
            held = await early
        assert held[0] == 204  # (the proxy held what the test meant it to hold)
        assert after_write == (200, mine, "true"), f"a read after the write got {after_write}"
    finally:
        await proxy.__aexit__()


async def test_a_reader_behind_the_writes_gets_recent_answers_joined(servers: Servers) -> None:
    """Readers re-polling at A and B got A..B and B..C; a reader still at A after the write that
    ended at C was acknowledged must see C: it gets A..C joined from those answers, without a
    request to the origin. Past what the edge has seen, it asks the origin."""
    origin = servers.origin("--fsync", "never", long_poll_timeout=LONG_POLL_TIMEOUT)
    edge = servers.edge(origin.url, long_poll_timeout=LONG_POLL_TIMEOUT)
    url = edge.url + "/v1/stream/write-through/joined"
    json_type = "application/json"
    async with aiohttp.ClientSession() as session:

        async def poll(offset: str) -> tuple[int, bytes, str, str]:
            async with session.get(url, params={"offset": offset, "live": "long-poll"}) as r:
                return r.status, await r.read(), r.headers["Stream-Next-Offset"], r.headers.get("ETag", "")

        async def shared_poll_answering(offset: str, body: bytes) -> tuple[int, bytes, str, str]:
            waiting = asyncio.ensure_future(poll(offset))
            await wait_metric(session, edge.url, "ds_edge_long_poll_waiters", 1, 10)
            await append(session, url, json_type, body)
            return await waiting

        start = await create(session, url, json_type)
        first = await shared_poll_answering(start, b'{"n":1}')
        second = await shared_poll_answering(first[2], b'[{"n":2},{"n":3}]')
        assert first[:2] == (200, b'[{"n":1}]') and second[:2] == (200, b'[{"n":2},{"n":3}]')
        before = await origin_stream_gets(session, origin.url)
        joined = await poll(start)
        assert await origin_stream_gets(session, origin.url) == before  # answered by the edge
        assert joined == (200, b'[{"n":1},{"n":2},{"n":3}]', second[2], f'"{start}:{second[2]}"')
        # The origin's own answer to that read is the same.
        async with session.get(origin.url + "/v1/stream/write-through/joined", params={"offset": start}) as r:
            assert (await r.read(), r.headers["ETag"]) == (joined[1], joined[3])
        # A write the edge has no answer for yet: the reader behind it is sent to the origin.
        before = await origin_stream_gets(session, origin.url)
        end = await append(session, url, json_type, b'{"n":4}')
        latest = await poll(start)
        assert latest[:3] == (200, b'[{"n":1},{"n":2},{"n":3},{"n":4}]', end)
        assert await origin_stream_gets(session, origin.url) == before + 1
