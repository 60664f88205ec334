"""The rate limit keys on the client a trusted proxy names, not on the proxy (issue 11).

Behind an edge every request reaches the origin from the edge's address, so one busy client
used to throttle everyone. The edge now appends its peer to X-Forwarded-For, and the origin
believes that header only from --trusted-proxies. Clients are told apart by their loopback
source address (127.0.0.5, 127.0.0.6, ...); the edge reaches the origin from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import ProcessGroup, process_group

pytestmark = pytest.mark.timeout(60)

LIMIT = ("--rate-limit", "0.2", "--rate-burst", "3")  # three requests, then one per 5 s


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, long_poll_timeout=5.0) as g:
        yield g


async def statuses(url: str, count: int, source: str = "127.0.0.1", headers: Mapping[str, str] = {}) -> list[int]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        out = []
        for _ in range(count):
            async with http.head(url + "/v1/stream/s", headers=headers) as r:
                out.append(r.status)
        return out


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(group: ProcessGroup) -> None:
    origin = group.origin("--engine", "memory", *LIMIT, "--trusted-proxies", "127.0.0.1/32")
    one = await statuses(origin.url, 4, headers={"X-Forwarded-For": "203.0.113.7"})
    assert one == [404, 404, 404, 429]
    # Another client behind the same proxy has its own bucket.
    assert await statuses(origin.url, 3, headers={"X-Forwarded-For": "203.0.113.8"}) == [404, 404, 404]
    # Entries left of the first untrusted one are the client's own claims: they change nothing.
    spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert await statuses(origin.url, 1, headers=spoofed) == [429]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(group: ProcessGroup) -> None:
    origin = group.origin("--engine", "memory", *LIMIT, "--trusted-proxies", "10.0.0.0/8")
    assert await statuses(origin.url, 3, headers={"X-Forwarded-For": "203.0.113.7"}) == [404, 404, 404]
    # Claiming to be someone else does not give a new bucket: the peer is the client.
    assert await statuses(origin.url, 1, headers={"X-Forwarded-For": "203.0.113.8"}) == [429]


async def test_clients_behind_an_edge_are_limited_one_by_one(group: ProcessGroup) -> None:
    origin = group.origin("--engine", "memory", *LIMIT, "--trusted-proxies", "127.0.0.1/32")
    edge = group.edge(origin.url)
    assert await statuses(edge.url, 4, source="127.0.0.5") == [404, 404, 404, 429]
    # A second client of the same edge is not throttled by the first (it used to be: one bucket).
    assert await statuses(edge.url, 3, source="127.0.0.6") == [404, 404, 404]
    # The first cannot escape its bucket by naming someone else: the edge appends its real peer.
    assert await statuses(edge.url, 1, source="127.0.0.5", headers={"X-Forwarded-For": "203.0.113.9"}) == [429]
