"""Scopes end on a path-segment boundary, and a malformed signed URL is a 400, on every surface.

One origin and one edge with the same policy file (and an edge without it), real processes; each
check runs against the protocol and the REST API, through the origin and through the edge.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from urllib.request import Request, urlopen

import aiohttp
import pytest

from plugin_streams.shared.auth import signed_query
from tests.support.credentials import bearer
from tests.support.processes import CLI, EdgeProcess, OriginProcess

KEY = b"k"
POLICY = """
public_read = ["pub"]
signing_key = "k"

[[token]]
name = "admin"
token = "root"
admin = [""]

[[token]]
name = "ingest"
token = "t"
read = ["events"]
"""
STREAMS = (
    "rooms/42",
    "rooms/42/sub",
    "rooms/420",
    "rooms/42-private",
    "events/a",
    "events-secret/a",
    "pub",
    "pub/a",
    "pubx/a",
)
ROOT = bearer("root")

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Surfaces:
    origin: str
    edge: str
    open_edge: str  # an edge without --auth-config: the origin decides
    policy: Path


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Surfaces]:
    root: Path = tmp_path_factory.mktemp("scopes")
    policy = root / "policy.toml"
    policy.write_text(POLICY)
    with (
        OriginProcess(root / "data", "--auth-config", str(policy)) as origin,
        EdgeProcess(origin.url, root, "--auth-config", str(policy)) as edge,
        EdgeProcess(origin.url, root) as open_edge,
    ):
        for name in STREAMS:
            headers = {"Content-Type": "text/plain", **ROOT}
            with urlopen(Request(f"{origin.url}/v1/stream/{name}", b"x", headers, method="PUT"), timeout=10) as r:
                assert r.status == 201, (name, r.status)
        yield Surfaces(origin.url, edge.url, open_edge.url, policy)


def reads(surfaces: Surfaces, name: str) -> list[tuple[str, str]]:
    """(label, URL) of a read of stream `name`: protocol and REST, at the origin and the edge."""
    rest = f"/streams/api/v1/streams/{quote(name, safe='')}/read"
    return [
        ("origin", f"{surfaces.origin}/v1/stream/{name}?offset=-1"),
        ("edge", f"{surfaces.edge}/v1/stream/{name}?offset=-1"),
        ("origin REST", f"{surfaces.origin}{rest}?after=-1"),
        ("edge REST", f"{surfaces.edge}{rest}?after=-1"),
    ]


async def statuses(
    surfaces: Surfaces, name: str, *, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> dict[str, int]:
    out = {}
    async with aiohttp.ClientSession() as session:
        for label, url in reads(surfaces, name):
            async with session.get(url, params=query or {}, headers=headers or {}) as r:
                await r.read()
                out[label] = r.status
    return out


def everywhere(status: int) -> dict[str, int]:
    return {"origin": status, "edge": status, "origin REST": status, "edge REST": status}


async def test_a_signed_url_reads_its_stream_and_those_below_it_only(surfaces: Surfaces) -> None:
    query = signed_query(KEY, "rooms/42", int(time.time()) + 600)
    for name in ("rooms/42", "rooms/42/sub"):
        assert await statuses(surfaces, name, query=query) == everywhere(200), name
    for name in ("rooms/420", "rooms/42-private"):
        assert await statuses(surfaces, name, query=query) == everywhere(403), f"a URL signed for rooms/42 read {name}"
    # A scope ending in "/" covers what is below it; "" covers everything.
    below = signed_query(KEY, "rooms/", int(time.time()) + 600)
    assert await statuses(surfaces, "rooms/420", query=below) == everywhere(200)
    everything = signed_query(KEY, "", int(time.time()) + 600)
    assert await statuses(surfaces, "events-secret/a", query=everything) == everywhere(200)


async def test_token_and_public_prefixes_end_on_a_segment(surfaces: Surfaces) -> None:
    token = bearer("t")
    assert await statuses(surfaces, "events/a", headers=token) == everywhere(200)
    assert await statuses(surfaces, "events-secret/a", headers=token) == everywhere(403), "read = ['events']"
    for name in ("pub", "pub/a"):
        assert await statuses(surfaces, name) == everywhere(200), name
    assert await statuses(surfaces, "pubx/a") == everywhere(401), "public_read = ['pub']"


@pytest.mark.parametrize(
    "expires",
    ["\u00b2", "1" * 5000, "", "-5", "\u0661\u0662\u0663"],
    ids=["superscript-2", "5000-digits", "empty", "negative", "arabic-indic-digits"],
)
async def test_a_malformed_expiry_is_a_400_with_a_reason(surfaces: Surfaces, expires: str) -> None:
    query = {**signed_query(KEY, "rooms/", int(time.time()) + 600), "ds_exp": expires}
    urls = [*reads(surfaces, "rooms/42"), ("open edge", f"{surfaces.open_edge}/v1/stream/rooms/42?offset=-1")]
    async with aiohttp.ClientSession() as session:
        for label, url in urls:
            for live in ({}, {"live": "long-poll"}):
                async with session.get(url, params={**query, **live}) as r:
                    body = await r.text()
                    assert r.status == 400, (label, live, r.status, body[:200])
                    if not (label == "open edge" and live):  # (an edge's long-poll error reasons: not here)
                        assert "ds_exp" in body and len(body) < 300, (label, live, body[:300])


def test_sign_says_what_a_url_covers(surfaces: Surfaces) -> None:
    def sign(scope: str) -> subprocess.CompletedProcess[str]:
        args = [CLI, "sign", "--auth-config", str(surfaces.policy), "--scope", scope]
        return subprocess.run(args, capture_output=True, text=True, timeout=30)

    done = sign("rooms/42")
    assert done.returncode == 0, done.stderr
    assert "ds_sig=" in done.stdout and "ds_scope=rooms%2F42" in done.stdout
    assert "'rooms/42' and every stream below 'rooms/42/'" in done.stderr, done.stderr
    assert "every stream below 'rooms/'" in sign("rooms/").stderr
    assert "every stream" in sign("").stderr
    bad = sign("rooms//42")
    assert bad.returncode == 2 and "--scope" in bad.stderr, bad.stderr
