"""Smaller findings of issue #11 on real processes: what a hostile request target, Host header
or creation header gets from an origin and an edge in front of it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.edge.conftest import Servers

pytestmark = pytest.mark.timeout(60)
TEXT = {"Content-Type": "text/plain"}


async def raw_request(url: str, head: str | bytes) -> tuple[int, bytes]:
    """Send `head` as is (aiohttp would normalise the request target) and read the answer."""
    parsed = URL(url)
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    try:
        writer.write(head if isinstance(head, bytes) else head.encode())
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_absolute_form_target_reaches_the_origin_by_path_only(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with (
        aiohttp.ClientSession() as session,
        session.put(origin.stream_url + "s", data=b"hello", headers=TEXT) as r,
    ):
        assert r.status == 201
    for target in ("http://x/v1/stream/s?offset=-1", "http://evil.example:1/v1/stream/s?offset=now"):
        status, body = await raw_request(edge.url, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200, (target, status, body)
        assert body == (b"hello" if "offset=-1" in target else b"")
    status, _ = await raw_request(
        edge.url,
        "POST http://x/v1/stream/s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        "Content-Length: 1\r\nConnection: close\r\n\r\n!",
    )
    assert status == 204


async def test_unknown_paths_are_404_at_the_edge_and_known_ones_405(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as session:
        for server, method, path, status in (
            (edge, "GET", "/ui/", 404),
            (edge, "GET", "/v1/replication/changes", 404),
            (edge, "POST", "/v1/replication/touch", 404),
            (edge, "GET", "/no/such/thing", 404),
            (edge, "POST", "/metrics", 405),  # exists, with GET only
            (edge, "OPTIONS", "/no/such/thing", 204),  # CORS preflight answers everywhere
            (origin, "GET", "/no/such/thing", 404),
            (origin, "DELETE", "/healthz", 405),
        ):
            async with session.request(method, server.url + path) as r:
                assert r.status == status, (server.url, method, path, r.status)
                if status == 405:
                    assert "OPTIONS" not in r.headers.get("Allow", "")


async def test_long_poll_errors_keep_their_reason_at_the_edge(servers: Servers) -> None:
    origin = servers.origin(long_poll_timeout=1)
    edge = servers.edge(origin.url, long_poll_timeout=1)
    async with aiohttp.ClientSession() as session:
        async with session.put(origin.stream_url + "s", data=b"abc", headers=TEXT) as r:
            assert r.status == 201
            tail = r.headers["Stream-Next-Offset"]
        generation = int(tail.split("_")[0])
        beyond = f"{generation:016d}_{999:016d}"
        for path, offset in (("missing", "-1"), ("s", beyond)):
            query = {"offset": offset, "live": "long-poll"}
            async with session.get(origin.stream_url + path, params=query) as r:
                expected = (r.status, await r.text())
            assert expected[0] in (400, 404) and expected[1].strip()
            async with session.get(edge.stream_url + path, params=query) as r:
                assert (r.status, await r.text()) == expected


async def test_location_never_names_the_clients_host(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    evil = {**TEXT, "Host": "evil.example"}

    async def location(server_url: str, name: str) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.put(f"{server_url}/v1/stream/{name}?x=1", headers=evil) as r,
        ):
            assert r.status == 201, await r.text()
            return r.headers["Location"]

    # Without --public-url: the address the connection reached.
    assert await location(origin.url, "a") == origin.url + "/v1/stream/a"
    assert await location(edge.url, "b") == edge.url + "/v1/stream/b"
    public_origin = servers.origin("--public-url", "https://streams.example.com/", data_dir=servers.tmp_path / "d2")
    public_edge = servers.edge(origin.url, "--public-url", "https://cdn.example.com")
    assert await location(public_origin.url, "c") == "https://streams.example.com/v1/stream/c"
    assert await location(public_edge.url, "d") == "https://cdn.example.com/v1/stream/d"


async def test_a_stream_cannot_be_created_already_expired(servers: Servers) -> None:
    origin = servers.origin()
    edge = servers.edge(origin.url)
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    async with aiohttp.ClientSession() as session:
        for server in (origin, edge):
            for value in (past, "1970-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
                async with session.put(server.stream_url + "old", headers={**TEXT, "Stream-Expires-At": value}) as r:
                    text = await r.text()
                    assert r.status == 400 and 0 < len(text) < 200, (value, r.status, text)
            async with session.put(server.stream_url + "ttl", headers={**TEXT, "Stream-TTL": "9" * 5000}) as r:
                assert r.status == 400
            async with session.head(server.stream_url + "old") as r:
                assert r.status == 404
        async with session.put(origin.stream_url + "new", headers={**TEXT, "Stream-Expires-At": future}) as r:
            assert r.status == 201


async def test_credentials_that_are_not_utf8_are_refused_not_a_500(servers: Servers, tmp_path: Path) -> None:
    """Header bytes that are not UTF-8 reach aiohttp handlers as lone surrogates; hashing the
    bearer token once failed on them with a 500 at a protected origin and edge."""
    policy = tmp_path / "auth.toml"
    policy.write_text('public_read = ["public/"]\n[[token]]\nname = "w"\ntoken = "w-secret"\nwrite = [""]\n')
    origin = servers.origin("--auth-config", str(policy))
    edge = servers.edge(origin.url, "--auth-config", str(policy))
    for server in (origin, edge):
        for path in ("/v1/stream/app/a?offset=-1", "/streams/api/v1/streams/app/a/read"):
            head = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
            status, body = await raw_request(server.url, head.encode("latin-1"))
            assert status == 401, (server.url, path, status, body)


async def test_sse_from_an_offset_that_is_not_a_message_boundary_is_a_400(servers: Servers) -> None:
    """The first read of an SSE response once came after its 200 status line: its 400 was
    written as a whole second response inside the chunked event stream."""
    origin = servers.origin()
    edge = servers.edge(origin.url)
    json_type = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.put(origin.stream_url + "j", data=b'[{"a":1},{"b":2}]', headers=json_type) as r:
            assert r.status == 201
            generation = r.headers["Stream-Next-Offset"].split("_")[0]
        inside = f"{generation}_{3:016d}"  # inside {"a":1},
        for server in (origin, edge):
            url = f"{server.stream_url}j?offset={inside}&live=sse"
            async with session.get(url) as r:
                body = await r.text()
                assert (r.status, r.content_type) == (400, "text/plain"), (server.url, r.status, body[:200])
                assert "boundary" in body and "HTTP/1.1" not in body


async def test_a_client_leaving_mid_body_is_no_server_error(servers: Servers) -> None:
    """A request body cut off by the client closing once went through aiohttp's 500 path: an
    ERROR with a traceback in the log for every such client, on the origin and at an edge."""
    origin = servers.origin()
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as session, session.put(origin.stream_url + "s", headers=TEXT) as r:
        assert r.status == 201
    for server in (origin, edge):
        for size in (1000, 10_000_000):  # buffered by the edge, and streamed upstream
            for method, path in (("POST", "/v1/stream/s"), ("POST", "/streams/api/v1/streams/s/messages")):
                parsed = URL(server.url)
                _, writer = await asyncio.open_connection(parsed.host, parsed.port)
                writer.write(
                    f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {size}\r\n\r\n".encode()
                    + b"x" * 500
                )
                await writer.drain()
                await asyncio.sleep(0.1)
                writer.close()
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as session, session.get(origin.stream_url + "s?offset=-1") as r:
            assert await r.read() == b""  # nothing of a cut-off body was appended
        log = server.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]


async def test_an_expect_header_that_is_not_utf8_is_a_417_not_a_500(servers: Servers) -> None:
    """aiohttp's own Expect handler quoted the header in its 417 and failed on bytes that are not
    UTF-8: a 500 with a traceback, on any path, before the middlewares."""
    origin = servers.origin()
    edge = servers.edge(origin.url)
    for server in (origin, edge):
        for method, path in (("HEAD", "/v1/stream/s"), ("GET", "/no/such/path"), ("OPTIONS", "/v1/stream/a")):
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nExpect: i\x9c\r\nConnection: close\r\n\r\n"
            status, _ = await raw_request(server.url, head.encode("latin-1"))
            assert status == 417, (server.url, method, path, status)
        # 100-continue still works: the body is sent after the interim answer.
        parsed = URL(server.url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        writer.write(
            b"PUT /v1/stream/continued HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        async with asyncio.timeout(10):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
            writer.write(b"hi")
            answer = await reader.read()
        writer.close()
        assert answer.split(b" ", 2)[1] in (b"201", b"200"), answer[:200]
        assert "Traceback" not in server.log_path.read_text(errors="replace")
