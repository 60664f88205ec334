"""edge.upstream: every failure counted under its kind, and reported to the origin's health."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest

from plugin_streams.edge.metrics import EdgeMetrics
from plugin_streams.edge.origins import Origins
from plugin_streams.edge.upstream import Upstream, upstream_kind
from plugin_streams.shared.errors import Unavailable


@pytest.mark.parametrize(
    ("method", "target", "kind"),
    [
        ("POST", "/v1/stream/a", "write"),
        ("PUT", "/v1/stream/a", "write"),
        ("DELETE", "/streams/api/v1/streams/a", "write"),
        ("POST", "/streams/api/v1/streams/a/append", "write"),
        ("HEAD", "/v1/stream/a", "head"),
        ("GET", "/v1/stream/a?offset=-1", "catch_up"),
        ("GET", "/v1/stream/a?offset=x&live=long-poll", "long_poll"),
        ("GET", "/v1/stream/a?offset=x&live=sse", "sse"),
        ("GET", "/streams/api/v1/streams/a/read?after=0", "catch_up"),
        ("GET", "/streams/api/v1/streams/a/tail?after=0", "sse"),
        ("GET", "/streams/api/v1/streams/a/tail?after=0&mode=long-poll", "long_poll"),
        ("GET", "/streams/api/v1/streams/a", "describe"),
        ("GET", "/streams/api/v1/streams", "describe"),
        ("GET", "http://elsewhere/v1/stream/a?live=sse", "sse"),  # absolute-form: its path and query
    ],
)
def test_kind_of_a_request(method: str, target: str, kind: str) -> None:
    assert upstream_kind(method, target) == kind


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_a_refused_connection_counts_under_its_kind_and_marks_the_origin_unreachable(
    session: aiohttp.ClientSession,
) -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    upstream = Upstream(f"http://127.0.0.1:{free_port()}", session, timeout=2, errors=metrics.upstream_errors)
    with pytest.raises(Unavailable):
        await upstream.request("GET", "/v1/stream/a?offset=x&live=long-poll", {})
    with pytest.raises(Unavailable):
        await upstream.request("POST", "/v1/stream/a", {}, b"x")
    with pytest.raises(Unavailable):
        await upstream.request("GET", "/readyz", {}, kind="readiness")
    assert metrics.upstream_errors.labels("long_poll")._value.get() == 1
    assert metrics.upstream_errors.labels("write")._value.get() == 1
    assert metrics.upstream_errors.labels("readiness")._value.get() == 1
    assert upstream.health.reachable is False
    assert "ClientConnectorError" in upstream.health.reason


async def test_a_5xx_counts_as_a_failure_but_the_origin_answered(session: aiohttp.ClientSession) -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503 if request.query.get("live") else 200)

    app = web.Application()
    app.router.add_get("/v1/stream/a", busy)
    async with TestServer(app, host="127.0.0.1") as server:
        metrics = EdgeMetrics(CollectorRegistry())
        upstream = Upstream(str(server.make_url("")), session, timeout=2, errors=metrics.upstream_errors)
        assert (await upstream.request("GET", "/v1/stream/a?offset=-1", {})).status == 200
        assert (await upstream.request("GET", "/v1/stream/a?offset=x&live=long-poll", {})).status == 503
    assert metrics.upstream_errors.labels("catch_up")._value.get() == 0
    assert metrics.upstream_errors.labels("long_poll")._value.get() == 1
    assert upstream.health.reachable is True


async def test_a_client_left_without_an_answer_counts_and_is_told_to_retry(session: aiohttp.ClientSession) -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    upstream = Upstream("http://127.0.0.1:1", session, timeout=2, errors=metrics.upstream_errors)
    upstream.health.answered()
    error = upstream.no_answer("sse", 5.0)  # waiting since before that answer: the origin is not blamed
    assert error.status == 503 and error.headers == {"Retry-After": "2"}
    assert metrics.upstream_errors.labels("sse")._value.get() == 1
    assert upstream.health.reachable is True
    upstream.no_answer("sse", 0.0)
    assert metrics.upstream_errors.labels("sse")._value.get() == 2
    assert upstream.health.reachable is False


# -- several origins: failover ---------------------------------------------------------------


class Fake:
    """An origin that answers `status` to everything (or drops the connection) and counts what it got."""

    def __init__(self, status: int = 200, drop: bool = False) -> None:
        self.status = status
        self.drop = drop
        self.got: list[tuple[str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.method, await request.read()))
        if self.drop and request.transport is not None:
            request.transport.close()  # the request was sent; no answer comes back
        return web.Response(status=self.status, text="ok")


@pytest.fixture
async def fakes() -> AsyncIterator[list[tuple[Fake, str]]]:
    """Two fake origins, a healthy second one behind whatever the test makes of the first."""
    made: list[tuple[Fake, str]] = []
    servers: list[TestServer] = []
    for _ in range(2):
        fake = Fake()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fake.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        made.append((fake, str(server.make_url("")).rstrip("/")))
    yield made
    for server in servers:
        await server.close()


def failover_upstream(session: aiohttp.ClientSession, *urls: str) -> tuple[Upstream, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = EdgeMetrics(registry)
    origins = Origins.of(urls, on_failover=metrics.origin_failovers.inc)
    metrics.watch_origins(origins)
    return Upstream(origins, session, timeout=2, errors=metrics.upstream_errors), registry


def up(registry: CollectorRegistry, url: str) -> float | None:
    return registry.get_sample_value("ds_edge_origin_up", {"origin": url})


def failovers(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("ds_edge_origin_failovers_total")


PRODUCER = {"Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": "0"}


async def test_nothing_sent_to_a_refusing_origin_so_even_a_plain_append_goes_to_the_next(
    session: aiohttp.ClientSession, fakes: list[tuple[Fake, str]]
) -> None:
    (second, url), _ = fakes
    dead = f"http://127.0.0.1:{free_port()}"
    upstream, registry = failover_upstream(session, dead, url)
    reply = await upstream.request("POST", "/v1/stream/a", {"Content-Type": "text/plain"}, b"x")
    assert reply.status == 200 and second.got == [("POST", b"x")]
    assert upstream.origin == url  # sticky from now on
    assert (await upstream.request("GET", "/v1/stream/a?offset=-1", {})).status == 200
    assert failovers(registry) == 1
    assert up(registry, dead) == 0 and up(registry, url) == 1
    assert registry.get_sample_value("ds_edge_upstream_errors_total", {"kind": "write"}) == 1  # the refused attempt
    assert registry.get_sample_value("ds_edge_origin_reachable") == 1


async def test_a_gateway_failure_moves_on_but_repeats_only_what_is_safe(
    session: aiohttp.ClientSession, fakes: list[tuple[Fake, str]]
) -> None:
    (first, first_url), (second, second_url) = fakes
    first.status = 503
    upstream, registry = failover_upstream(session, first_url, second_url)
    reply = await upstream.request("POST", "/v1/stream/a", {}, b"plain")
    assert reply.status == 503  # the origin's own answer: the client decides
    assert second.got == [] and upstream.origin == second_url  # the next request goes to the second
    upstream.origins.answered(upstream.origins.all[0], 200)
    upstream.origins.answered(upstream.origins.all[1], 503)  # back to the first, which still answers 503
    assert upstream.origin == first_url
    reply = await upstream.request("POST", "/v1/stream/a", {k.lower(): v for k, v in PRODUCER.items()}, b"p0")
    assert reply.status == 200 and second.got == [("POST", b"p0")]  # an idempotent producer's append is repeated
    reply = await upstream.request("HEAD", "/v1/stream/a", {})
    assert reply.status == 200 and [m for m, _ in second.got] == ["POST", "HEAD"]
    assert failovers(registry) == 3


async def test_a_request_sent_without_an_answer_is_repeated_only_when_idempotent(
    session: aiohttp.ClientSession, fakes: list[tuple[Fake, str]]
) -> None:
    (first, first_url), (second, second_url) = fakes
    first.drop = True
    upstream, _ = failover_upstream(session, first_url, second_url)
    with pytest.raises(Unavailable) as refused:
        await upstream.request("POST", "/v1/stream/a", {}, b"once")
    assert refused.value.status == 503 and "Retry-After" in refused.value.headers
    assert first.got == [("POST", b"once")] and second.got == []  # its fate is unknown: never sent twice
    upstream.origins.answered(upstream.origins.all[0], 200)
    upstream.origins.answered(upstream.origins.all[1], 502)
    assert upstream.origin == first_url
    assert (await upstream.request("GET", "/v1/stream/a?offset=-1", {})).status == 200
    assert (await upstream.request("POST", "/v1/stream/a", PRODUCER, b"p")).status == 200
    assert second.got == [("GET", b""), ("POST", b"p")]


async def test_a_streamed_body_is_never_sent_twice(
    session: aiohttp.ClientSession, fakes: list[tuple[Fake, str]]
) -> None:
    (first, first_url), (second, second_url) = fakes
    first.status = 503
    upstream, _ = failover_upstream(session, first_url, second_url)

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed"

    reply = await upstream.request("POST", "/v1/stream/a", PRODUCER, body())
    assert reply.status == 503 and second.got == []


def test_origin_up_is_labelled_by_each_configured_origin_without_its_password() -> None:
    registry = CollectorRegistry()
    metrics = EdgeMetrics(registry)
    origins = Origins.of(["http://edge:secret@a.example:4437", "http://b.example:4437/base"])
    metrics.watch_origins(origins)
    origins.no_answer(origins.current, origins.current.began(), "refused")
    assert up(registry, "http://edge@a.example:4437") == 0
    assert up(registry, "http://b.example:4437/base") == 1
    assert "secret" not in generate_latest(registry).decode()


async def test_an_sse_stream_opens_on_the_next_origin_and_a_break_marks_its_origin_down(
    session: aiohttp.ClientSession, fakes: list[tuple[Fake, str]]
) -> None:
    (first, first_url), (_, second_url) = fakes
    first.status = 502
    upstream, registry = failover_upstream(session, first_url, second_url)
    response = await upstream.open_stream("/v1/stream/a?offset=-1&live=sse", {})
    assert response.status == 200 and str(response.url).startswith(second_url)
    response.release()
    upstream.origins.answered(upstream.origins.all[0], 200)  # the first is back; the edge stays
    upstream.stream_broke(response, "ClientPayloadError")
    assert upstream.origin == first_url and up(registry, second_url) == 0
