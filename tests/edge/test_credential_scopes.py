"""An edge without the policy file never serves a token-authorised answer to a client without the token.

The origin authorises a request by its bearer token whenever one is sent, and ignores any
`ds_*` parameters beside it; an edge that keyed such a request by those parameters stored the
token's private answer (and its live SSE hub) where an anonymous client sending the same,
attacker-chosen parameters found it. Real origin (with --auth-config) and edge (without).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, edge_upstream, offset_at, split_offset
from tests.support.credentials import bearer
from tests.support.sse_reader import SSEReader

POLICY = """
signing_key = "k"

[[token]]
name = "victim"
token = "token-v"
read = ["priv/"]

[[token]]
name = "writer"
token = "token-w"
admin = ["priv/"]
"""
VICTIM = bearer("token-v")
WRITER = bearer("token-w")
BINARY = "application/octet-stream"

pytestmark = pytest.mark.timeout(60)


def start(servers: Servers) -> tuple[str, str]:
    policy = Path(servers.tmp_path) / "auth.toml"
    policy.write_text(POLICY)
    origin = servers.origin("--fsync", "never", "--auth-config", str(policy))
    edge = servers.edge(origin.url)  # no --auth-config: the origin decides who reads what
    return edge.url, edge.stream_url


def planted() -> dict[str, str]:
    """Signature parameters an attacker chose (and put in a link the victim followed)."""
    return {"ds_scope": "priv/", "ds_exp": str(int(time.time()) + 3600), "ds_sig": "attacker-chosen"}


async def test_a_token_read_is_never_cached_under_signature_parameters(servers: Servers) -> None:
    edge_url, streams = start(servers)
    url = streams + "priv/chunks"
    async with aiohttp.ClientSession() as session:
        generation, _ = split_offset(await create(session, url, BINARY, headers=WRITER))
        rng = random.Random(7)
        for _ in range(25):
            await append(session, url, BINARY, rng.randbytes(4000), headers=WRITER)
        params = {"offset": offset_at(generation, 0), **planted()}
        async with session.get(url, params=params, headers=VICTIM) as r:
            assert r.status == 200
            assert "immutable" in r.headers["Cache-Control"], r.headers["Cache-Control"]
            private = await r.read()
        assert len(private) > 10_000
        # The victim's own second read is still served from the edge's cache.
        before = await edge_upstream(session, edge_url, "catch_up")
        async with session.get(url, params=params, headers=VICTIM) as r:
            assert (r.status, await r.read()) == (200, private)
        assert await edge_upstream(session, edge_url, "catch_up") == before, "the token's answer was not cached"

        async with session.get(url, params=params) as r:
            leaked = await r.read()
            status = r.status
        assert status in (401, 403) and private not in leaked, (
            f"anonymous read with the victim's ds_* parameters: {status}, {len(leaked)} bytes"
        )


async def test_an_sse_hub_fed_by_a_token_is_not_shared_by_signature_parameters(servers: Servers) -> None:
    _, streams = start(servers)
    url = streams + "priv/live"
    query = {"offset": "now", "live": "sse", **planted()}
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession() as session:
        await create(session, url, "text/plain", b"old", headers=WRITER)
        async with session.get(url, params=query, headers=VICTIM, timeout=timeout) as victim:
            assert victim.status == 200
            victim_events = SSEReader(victim)
            assert await victim_events.first("control", 10) is not None  # the victim's hub is live
            async with session.get(url, params=query, timeout=timeout) as attacker:
                await append(session, url, "text/plain", b"secret", headers=WRITER)
                if attacker.status == 200:
                    seen = await SSEReader(attacker).first("data", 3)
                    assert seen is None, f"an anonymous SSE client with the victim's ds_* parameters got {seen!r}"
                else:
                    assert attacker.status in (401, 403), attacker.status
            assert await victim_events.first("data", 10) == "secret"
