"""SSE through the edge: clients starting anywhere get exactly the stream, from one upstream subscription."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import SSEClient, append, create, edge_upstream, split_offset, until, wait_metric

TEXT = "text/plain"
JSON = "application/json"
BINARY = "application/octet-stream"

pytestmark = pytest.mark.timeout(60)


def payload(content_type: str, i: int, rng: random.Random) -> bytes:
    if content_type == JSON:
        return json.dumps({"i": i, "text": f"message {i}\n\u00e9\u4e2d", "pad": "p" * rng.randrange(0, 300)}).encode()
    if content_type == BINARY:
        return rng.randbytes(rng.randrange(1, 600))
    # Line breaks, lines starting with spaces and multi-byte characters all cross SSE framing.
    return f"line {i}\n  indented \u00e9\u4e2d {'t' * rng.randrange(0, 300)}\n".encode()


def expected(content_type: str, bodies: list[bytes], first: int) -> object:
    if content_type == JSON:
        return [json.loads(b) for b in bodies[first:]]
    return b"".join(bodies[first:])


def seen(content_type: str, client: SSEClient) -> object:
    if content_type == JSON:
        return client.messages()
    return client.text(base64_mode=content_type == BINARY)


@pytest.mark.parametrize("content_type", [TEXT, JSON, BINARY])
async def test_sse_clients_from_many_offsets_receive_the_exact_stream(servers: Servers, content_type: str) -> None:
    origin = servers.origin("--fsync", "never", long_poll_timeout=10)
    edge = servers.edge(origin.url, long_poll_timeout=10)
    url = edge.stream_url + "sse/" + content_type.split("/")[1]
    rng = random.Random(11)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        offsets = [await create(session, url, content_type)]  # offsets[i]: the tail after i appends
        bodies: list[bytes] = []

        async def write(i: int) -> None:
            body = payload(content_type, i, rng)
            offsets.append(await append(session, url, content_type, body))
            bodies.append(body)

        for i in range(10):
            await write(i)
        sse_before = await edge_upstream(session, edge.url, "sse")

        stop = asyncio.Event()
        final: list[str] = []
        clients: list[tuple[SSEClient, int]] = []  # the client, and how many appends precede its start
        tasks = []

        def start(offset: str, index: int) -> SSEClient:
            client = SSEClient(url, offset)
            clients.append((client, index))
            tasks.append(asyncio.ensure_future(client.run(session, stop, final)))
            return client

        # 14 clients while the stream is idle: "now" is then exactly the tail after 10 appends.
        for offset, index in [("-1", 0), ("now", 10), ("now", 10), (offsets[0], 0), (offsets[10], 10)] + [
            (offsets[i], i) for i in (1, 2, 3, 5, 5, 7, 8, 9, 9)
        ]:
            start(offset, index)
        await until(lambda: all(c.controls for c, _ in clients), 15, "every client's first control event")
        for client, _ in clients:
            if client.start == "now":
                assert client.controls[0]["streamNextOffset"] == offsets[10]
                assert client.data == []

        # 30 more appends every ~20 ms; 6 more clients join on the way, just behind the tail.
        for i in range(10, 40):
            await write(i)
            if i in (18, 28):
                n = len(offsets) - 1
                for back in (0, 1, 4):
                    start(offsets[n - back], n - back)
            await asyncio.sleep(0.02)
        final.append(offsets[-1])
        stop.set()
        async with asyncio.timeout(20):
            await asyncio.gather(*tasks)
        sse_after = await edge_upstream(session, edge.url, "sse")

    print(
        f"\n{len(clients)} SSE clients, {len(bodies)} appends, upstream SSE subscriptions +{sse_after - sse_before:.0f}"
    )
    for client, index in clients:
        assert client.status == 200
        assert client.last_offset == offsets[-1], f"client from {client.start}: stopped at {client.last_offset}"
        assert client.controls[-1].get("upToDate") is True
        got, wanted = seen(content_type, client), expected(content_type, bodies, index)
        assert got == wanted, f"client from {client.start} ({index} appends before it): gap or duplicate"
    assert sse_after - sse_before <= 2


async def test_sse_client_joining_from_the_hub_history_gets_no_gap(servers: Servers) -> None:
    """A client that joins at an offset in the hub's recent history must still see every byte.

    With `--sse-client-buffer 65536`, replaying 160 KB of history into a new subscriber overflows
    its queue; the edge may then cut the client off (it resumes from its last offset), but what
    it did send must be the stream with no hole: a dropped event followed by later, smaller
    events that still fit would move the client's offset past bytes it never received.
    """
    origin = servers.origin("--fsync", "never", long_poll_timeout=10)
    edge = servers.edge(origin.url, "--sse-client-buffer", "65536", long_poll_timeout=10)
    url = edge.stream_url + "sse/history"
    async with aiohttp.ClientSession() as session:
        offsets = [await create(session, url, TEXT)]
        stop = asyncio.Event()
        final: list[str] = []
        follower = SSEClient(url, "now")  # keeps the edge's hub for this stream alive and current
        follower_task = asyncio.ensure_future(follower.run(session, stop, final))
        await until(lambda: bool(follower.controls), 10, "the follower's first control event")
        bodies = []
        for i in range(8):  # 40 KB and 200 B events in turn, each its own event at the hub
            size = 40_000 if i % 2 == 0 else 200
            body = (f"<{i}>".encode() + b"y" * size)[: size - 1] + b"\n"
            offsets.append(await append(session, url, TEXT, body))
            bodies.append(body)
            await asyncio.sleep(0.1)
        final.append(offsets[-1])
        # Every event is in the hub's history before anyone joins from it.
        assert await wait_metric(session, edge.url, "ds_edge_sse_events_total", len(bodies), 10) >= len(bodies)
        stop.set()
        base = split_offset(offsets[0])[1]
        content = b"".join(bodies)
        failures = []
        for index in range(4):
            client = SSEClient(url, offsets[index])
            async with asyncio.timeout(15):
                await client.run(session, stop, final)
            got = client.text()
            reached = client.last_offset or offsets[index]  # cut off before any control: nothing counted
            start, end = split_offset(offsets[index])[1] - base, split_offset(reached)[1] - base
            if got != content[start:end]:
                failures.append(
                    f"from {offsets[index]}: received {len(got)} bytes of data but its last control says "
                    f"{end - start} bytes ({end - start - len(got)} never sent)"
                )
        async with asyncio.timeout(10):
            await follower_task
        assert not failures, "\n".join(failures)
