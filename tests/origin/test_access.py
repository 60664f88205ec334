"""Access control: token rights on prefixes, public prefixes, signed URLs, and what caches may keep."""

from __future__ import annotations

import time

import pytest

from plugin_streams.shared.auth import AccessPolicy, TokenGrant, policy_from_mapping, signed_query
from tests.support.credentials import bearer
from tests.support.memory_origin import Client, MemoryClient, S

POLICY = policy_from_mapping(
    {
        "public_read": ["public/"],
        "signing_key": "sekrit",
        "token": [
            {"name": "admin", "token": "root", "admin": [""]},
            {"name": "writer", "token": "w", "write": ["app/"]},
            {"name": "reader", "token": "r", "read": ["app/"]},
        ],
    }
)


@pytest.fixture
async def client(memory_client: MemoryClient) -> Client:
    c = await memory_client(POLICY)
    for path in ("app/s", "public/s", "other/s"):
        r = await c.put(S + path, headers={"Content-Type": "text/plain"} | bearer("root"), data=b"data")
        assert r.status == 201
    return c


async def test_no_token_is_401_with_reason(client: Client) -> None:
    r = await client.get(S + "app/s")
    assert r.status == 401
    assert "Bearer" in r.headers["WWW-Authenticate"]
    assert "token" in await r.text()
    assert (await client.post(S + "app/s", headers={"Content-Type": "text/plain"}, data=b"x")).status == 401


async def test_unknown_or_malformed_token_is_401(client: Client) -> None:
    assert (await client.get(S + "app/s", headers=bearer("nope"))).status == 401
    assert (await client.get(S + "app/s", headers={"Authorization": "Basic dTpw"})).status == 401


@pytest.mark.parametrize(
    ("token", "method", "path", "status"),
    [
        ("reader", "GET", "app/s", 200),
        ("reader", "HEAD", "app/s", 200),
        ("reader", "POST", "app/s", 403),
        ("reader", "GET", "other/s", 403),
        ("writer", "POST", "app/s", 204),
        ("writer", "GET", "app/s", 200),  # write implies read
        ("writer", "DELETE", "app/s", 403),
        ("writer", "POST", "other/s", 403),
        ("root", "DELETE", "other/s", 204),
    ],
)
async def test_rights_by_prefix(client: Client, token: str, method: str, path: str, status: int) -> None:
    secret = {"reader": "r", "writer": "w", "root": "root"}[token]
    headers = bearer(secret) | ({"Content-Type": "text/plain"} if method == "POST" else {})
    r = await client.request(method, S + path, headers=headers, data=b"more" if method == "POST" else None)
    assert r.status == status, await r.text()


async def test_public_prefix_is_readable_by_anyone_but_not_writable(client: Client) -> None:
    r = await client.get(S + "public/s")
    assert r.status == 200 and await r.read() == b"data"
    assert r.headers["Cache-Control"].startswith("public")
    r = await client.post(S + "public/s", headers={"Content-Type": "text/plain"}, data=b"x")
    assert r.status == 401


async def test_token_reads_of_private_streams_are_private(client: Client) -> None:
    r = await client.get(S + "app/s", headers=bearer("r"))
    assert r.headers["Cache-Control"].startswith("private")


async def test_fork_needs_read_on_the_source(client: Client) -> None:
    headers = bearer("w") | {"Stream-Forked-From": "/v1/stream/other/s"}
    assert (await client.put(S + "app/fork", headers=headers)).status == 403
    headers = bearer("w") | {"Stream-Forked-From": "/v1/stream/public/s", "Content-Type": "text/plain"}
    assert (await client.put(S + "app/fork", headers=headers)).status == 201


async def test_signed_url_valid_expired_tampered(client: Client) -> None:
    key = b"sekrit"
    now = int(time.time())
    good = signed_query(key, "app/", now + 60)
    r = await client.get(S + "app/s", params={"offset": "-1"} | good)
    assert r.status == 200 and await r.read() == b"data"
    cache = r.headers["Cache-Control"]
    assert cache.startswith("public")
    assert int(cache.split("max-age=")[1].split(",")[0]) <= 60  # never cached past the signature
    # The signature parameters are not part of what the stream serves.
    plain = await client.get(S + "app/s", params={"offset": "-1"}, headers=bearer("r"))
    assert r.headers["ETag"] == plain.headers["ETag"]

    expired = signed_query(key, "app/", now - 1)
    assert (await client.get(S + "app/s", params=expired)).status == 403
    tampered = dict(good, ds_scope="other/")
    assert (await client.get(S + "other/s", params=tampered)).status == 403
    wrong_scope = signed_query(key, "app/", now + 60)
    assert (await client.get(S + "other/s", params=wrong_scope)).status == 403
    forged = dict(good, ds_sig="A" * 43)
    assert (await client.get(S + "app/s", params=forged)).status == 403
    # Signed URLs grant reads only.
    r = await client.post(S + "app/s", params=good, headers={"Content-Type": "text/plain"}, data=b"x")
    assert r.status == 401


async def test_preflight_allows_authorization(client: Client) -> None:
    r = await client.options(
        S + "app/s",
        headers={"Origin": "https://example.com", "Access-Control-Request-Headers": "authorization"},
    )
    assert r.status == 204
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()


async def test_open_policy_allows_everything(memory_client: MemoryClient) -> None:
    c = await memory_client(AccessPolicy())
    assert (await c.put(S + "x", headers={"Content-Type": "text/plain"})).status == 201
    assert (await c.delete(S + "x")).status == 204


def test_token_hash_form() -> None:
    import hashlib

    policy = policy_from_mapping({"token": [{"token_sha256": hashlib.sha256(b"t").hexdigest(), "read": ["a/"]}]})
    grant = policy.tokens[0]
    assert isinstance(grant, TokenGrant) and grant.token_sha256 == hashlib.sha256(b"t").digest()
