"""Bad input gets a clear 4xx with a short reason, changes nothing, and never a 500 or a hang.

Runs the real application in-process (pytest-aiohttp) over the memory engine; each case is
followed by a check that the stream is exactly as it was.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable

import pytest
from aiohttp import ClientSession
from yarl import URL

from tests.support.memory_origin import Client, MemoryClient, S


@pytest.fixture
async def client(memory_client: MemoryClient) -> Client:
    return await memory_client(long_poll_timeout=0.2, max_body=1024 * 1024)


async def snapshot(client: Client, path: str) -> tuple[int, str | None, bytes]:
    response = await client.get(S + path, params={"offset": "-1"})
    return response.status, response.headers.get("Stream-Next-Offset"), await response.read()


async def expect_4xx(response_awaitable: Awaitable[object], status: int) -> str:
    response = await response_awaitable  # type: ignore[misc]
    body = await response.text()  # type: ignore[attr-defined]
    assert response.status == status, (response.status, body)  # type: ignore[attr-defined]
    assert 0 < len(body) < 300 and "Traceback" not in body
    return body


BAD_OFFSETS = ["", " ", "/", "../x", "a,b", "0 1", "12", "1_2", "-2", "NOW", "0000000000000001_000000000000000x"]


@pytest.mark.parametrize("offset", BAD_OFFSETS)
async def test_malformed_offsets_are_400(client: Client, offset: str) -> None:
    await client.put(S + "s", headers={"Content-Type": "text/plain"}, data=b"abc")
    before = await snapshot(client, "s")
    for live in (None, "long-poll", "sse"):
        params = {"offset": offset} | ({"live": live} if live else {})
        await expect_4xx(client.get(S + "s", params=params), 400)
    assert await snapshot(client, "s") == before


async def test_duplicate_offset_and_unknown_live_mode(client: Client) -> None:
    await client.put(S + "s", headers={"Content-Type": "text/plain"})
    await expect_4xx(client.get(S + "s?offset=-1&offset=-1"), 400)
    await expect_4xx(client.get(S + "s?offset=-1&live=websocket"), 400)
    await expect_4xx(client.get(S + "s?live=sse"), 400)


@pytest.mark.parametrize(
    "raw_path",
    ["/v1/stream/a/../b", "/v1/stream/a//b", "/v1/stream/./a", "/v1/stream/a%00b", "/v1/stream/" + "x" * 1100],
)
async def test_bad_paths_are_400_and_create_nothing(client: Client, raw_path: str) -> None:
    async with ClientSession() as session:
        url = URL(f"http://{client.host}:{client.port}{raw_path}", encoded=True)
        async with session.put(url, headers={"Content-Type": "text/plain"}, data=b"x") as response:
            assert response.status == 400, response.status
    assert (await client.get(S + "b")).status == 404
    assert (await client.get(S + "a")).status == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"Stream-TTL": "abc"},
        {"Stream-TTL": "-1"},
        {"Stream-TTL": "007"},
        {"Stream-TTL": "1", "Stream-Expires-At": "2099-01-01T00:00:00Z"},
        {"Stream-Expires-At": "tomorrow"},
        {"Stream-Expires-At": "2099-02-30T00:00:00Z"},
        {"Content-Type": "not a type"},
        {"Stream-Fork-Offset": "0000000000000000_0000000000000000"},
        {"Stream-Forked-From": "/v1/stream/s", "Stream-Fork-Sub-Offset": "1.5"},
        {"Stream-Forked-From": "/v1/stream/s", "Stream-Fork-Offset": "nope"},
        {"Stream-Forked-From": "/v1/stream/../etc"},
    ],
)
async def test_bad_create_headers_are_400(client: Client, headers: dict[str, str]) -> None:
    await client.put(S + "s", headers={"Content-Type": "text/plain"}, data=b"abc")
    await expect_4xx(client.put(S + "new", headers=headers), 400)
    assert (await client.head(S + "new")).status == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"Producer-Id": "p"},
        {"Producer-Id": "", "Producer-Epoch": "0", "Producer-Seq": "0"},
        {"Producer-Id": "p", "Producer-Epoch": "1e3", "Producer-Seq": "0"},
        {"Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": "-1"},
        {"Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": str(2**53)},
        {"Stream-Seq": "x" * 300},
    ],
)
async def test_bad_append_headers_are_400_and_append_nothing(client: Client, headers: dict[str, str]) -> None:
    await client.put(S + "s", headers={"Content-Type": "text/plain"}, data=b"abc")
    before = await snapshot(client, "s")
    await expect_4xx(client.post(S + "s", headers={"Content-Type": "text/plain"} | headers, data=b"zz"), 400)
    assert await snapshot(client, "s") == before


@pytest.mark.parametrize("body", [b"{", b"[]", b"NaN", b"[1, Infinity]", b"\xff\xfe", b'{"a": 1} x'])
async def test_bad_json_is_400_and_appends_nothing(client: Client, body: bytes) -> None:
    await client.put(S + "j", headers={"Content-Type": "application/json"}, data=b"[1]")
    before = await snapshot(client, "j")
    headers = {"Content-Type": "application/json", "Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": "0"}
    await expect_4xx(client.post(S + "j", headers=headers, data=body), 400)
    assert await snapshot(client, "j") == before
    # The rejected request did not advance the producer: seq 0 is still new.
    assert (await client.post(S + "j", headers=headers, data=b"2")).status == 200


async def test_oversized_body_is_413_and_changes_nothing(client: Client) -> None:
    await client.put(S + "s", headers={"Content-Type": "application/octet-stream"}, data=b"abc")
    before = await snapshot(client, "s")
    big = io.BytesIO(b"x" * (1024 * 1024 + 1))
    response = await client.post(S + "s", headers={"Content-Type": "application/octet-stream"}, data=big)
    assert response.status == 413
    assert await snapshot(client, "s") == before


async def test_unknown_method_is_405(client: Client) -> None:
    await client.put(S + "s", headers={"Content-Type": "text/plain"})
    response = await client.request("PATCH", S + "s", data=b"x")
    assert response.status == 405
    assert "PUT" in response.headers["Allow"]


async def test_errors_are_not_cached_and_carry_security_headers(client: Client) -> None:
    response = await client.get(S + "missing")
    assert response.status == 404
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
