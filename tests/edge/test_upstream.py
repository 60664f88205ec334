"""edge.upstream: every failure counted under its kind, and reported to the origin's health."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from plugin_streams.edge.metrics import EdgeMetrics
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
