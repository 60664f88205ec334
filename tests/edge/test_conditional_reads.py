"""Conditional reads through the edge are answered per client, never per shared upstream request.

Concurrent readers of one URL share one upstream request (edge.coalesce); if it carried the first
caller's If-None-Match, the origin's 304 reached every caller that joined it, with an empty body
none of them asked for. Real origin and edge.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create

pytestmark = pytest.mark.timeout(60)

ROUNDS = 30
READERS = 24  # per round, every third with a matching If-None-Match


async def test_a_shared_read_answers_each_client_by_its_own_conditionals(servers: Servers) -> None:
    origin = servers.origin("--fsync", "never")
    edge = servers.edge(origin.url)
    url = edge.stream_url + "conditional"
    connector = aiohttp.TCPConnector(limit=READERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await create(session, url, "application/octet-stream")
        for _ in range(20):
            await append(session, url, "application/octet-stream", b"x" * 3000)
        # `offset=-1` reads are coalesced at the edge but never cached: each round goes upstream.
        async with session.get(url, params={"offset": "-1"}) as r:
            assert r.status == 200
            body, etag = await r.read(), r.headers["ETag"]

        async def read(conditional: bool) -> tuple[bool, int, bytes]:
            headers = {"If-None-Match": etag} if conditional else {}
            async with session.get(url, params={"offset": "-1"}, headers=headers) as r:
                return conditional, r.status, await r.read()

        answers: list[tuple[bool, int, bytes]] = []
        for _ in range(ROUNDS):
            answers += await asyncio.gather(*(read(i % 3 == 0) for i in range(READERS)))
    plain = [(status, len(seen)) for conditional, status, seen in answers if not conditional]
    unasked = sum(1 for status, _ in plain if status == 304)
    assert unasked == 0, f"{unasked} of {len(plain)} unconditional reads got a 304"
    assert all(status == 200 for status, _ in plain)
    assert all(seen == body for conditional, status, seen in answers if not conditional)
    conditional = [(status, seen) for asked, status, seen in answers if asked]
    assert all(status == 304 and seen == b"" for status, seen in conditional), {s for s, _ in conditional}
